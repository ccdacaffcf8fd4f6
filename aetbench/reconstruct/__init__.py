"""aetbench.reconstruct"""
