"""musigen.eval"""
