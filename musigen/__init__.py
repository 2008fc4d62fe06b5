"""musigen: MusiCoT generation and InstructME editing for music researchers."""

__version__ = "0.1.0"
