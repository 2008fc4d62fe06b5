"""musigen.data"""
