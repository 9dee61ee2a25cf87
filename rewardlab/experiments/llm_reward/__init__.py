"""Rewards written by an LLM: task context and prompts, checks, the Eureka-style search."""
