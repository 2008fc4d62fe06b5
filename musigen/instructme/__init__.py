"""musigen.instructme"""
