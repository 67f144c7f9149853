"""Distillation as Lightning modules: configuration, schedules, parameter groups, EMA, the module."""
