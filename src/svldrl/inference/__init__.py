"""svldrl.inference"""
