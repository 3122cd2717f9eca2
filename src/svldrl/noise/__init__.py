"""svldrl.noise"""
