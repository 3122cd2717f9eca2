"""svldrl.models"""
