"""Scheduler: monitor sources, due-time computation and the run planner."""
