"""svldrl.metrics"""
