"""svldrl.baselines"""
