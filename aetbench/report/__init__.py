"""aetbench.report"""
