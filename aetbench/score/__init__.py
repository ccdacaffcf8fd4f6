"""aetbench.score"""
