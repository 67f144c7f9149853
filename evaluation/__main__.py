"""`python -m evaluation <command>`: probe, hest, plism, robustness, fidelity, report."""

from evaluation.cli import main

if __name__ == "__main__":
    main()
