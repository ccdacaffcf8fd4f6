"""aetbench.preprocess"""
