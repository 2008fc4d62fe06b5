"""The interactive demo: generate, edit round by round, and analyze in the browser.

The handlers (:mod:`musigen.demo_app.handlers`) are plain functions over files and
dataclasses, so they are tested without a browser; :mod:`musigen.demo_app.ui` only wires
them to Gradio components.  Gradio is an optional extra (``pip install 'musigen[demo]'``)
and is imported only by the UI module.
"""
