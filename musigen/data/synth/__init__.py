"""musigen.data.synth"""
