"""aetbench.io"""
