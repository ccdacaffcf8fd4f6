"""aetbench.structures"""
