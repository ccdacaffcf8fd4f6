"""aetbench.simulate"""
