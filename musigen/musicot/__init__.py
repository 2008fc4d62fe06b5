"""musigen.musicot"""
