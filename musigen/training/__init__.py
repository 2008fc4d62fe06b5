"""musigen.training"""
