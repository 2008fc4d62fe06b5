"""musigen.embedders"""
