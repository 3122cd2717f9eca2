"""svldrl.rl"""
