"""aetbench.trace"""
