"""svldrl.training"""
