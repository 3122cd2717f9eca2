"""svldrl.experiments"""
