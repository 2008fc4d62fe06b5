"""The Gradio page: three tabs wired to :mod:`musigen.demo_app.handlers`, and `serve`.

Gradio because it is what MusicGen's users met first, it plays and uploads audio out of
the box, and it runs offline from a PyPI wheel.  This module holds no logic of its own:
each callback calls one handler and turns any exception into a message in the page (the
traceback goes to the server log only).  Every component has an ``elem_id`` so the
browser test (and anyone scripting the page) can find it.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

from musigen.demo_app import handlers, render
from musigen.demo_app.handlers import DEFAULT_LIMITS, DemoLimits
from musigen.demo_app.history import EditHistory
from musigen.demo_app.models import DemoModels, ModelPaths
from musigen.demo_app.session_files import demo_files
from musigen.errors import ConfigError, MusigenError

LOG = logging.getLogger("musigen.demo")
#: Served fonts: the system's, so an offline browser never waits for a font CDN.
FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "monospace"]


def require_gradio() -> Any:
    """Import Gradio (with its telemetry off) or say how to install the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ConfigError("the demo needs Gradio: pip install 'musigen[demo]'") from None
    return gradio


def _fail(exc: BaseException, others: int) -> tuple[Any, ...]:
    """The status message for `exc`, and 'leave unchanged' for the other outputs."""
    import gradio as gr

    if not isinstance(exc, MusigenError):
        LOG.exception("demo handler failed")
    return (render.message(handlers.describe_error(exc), error=True),
            *(gr.skip() for _ in range(others)))


def _progress(progress: Any) -> handlers.ProgressFn:
    return lambda fraction, text: progress(fraction, desc=text)


def _model_banner(models: DemoModels) -> str:
    lines = []
    for role, folder, present in models.status():
        state = "ready" if present else "**missing** (that tab will say so when used)"
        lines.append(f"{role}: `{folder}` {state}")
    return "  \n".join(lines)


def build_app(models: DemoModels, work_dir: Path, limits: DemoLimits = DEFAULT_LIMITS) -> Any:
    """The page as a ``gradio.Blocks`` (not launched)."""
    gr = require_gradio()
    work_dir = Path(work_dir)
    sampling = models.sampling_defaults()
    edit_cfg = models.edit_defaults()
    tracker = gr.Progress(track_tqdm=True)  # a marker: Gradio makes a fresh one per event

    # ------------------------------------------------------------------ callbacks
    def on_generate(prompt: str, reference: str | None, duration: Any, seed: Any,
                    t_plan: float, t_audio: float, cfg_plan: float, cfg_audio: float,
                    progress: Any = tracker) -> tuple[Any, ...]:
        try:
            out = handlers.generate(models, work_dir, prompt, reference, duration, seed,
                                    t_plan, t_audio, cfg_plan, cfg_audio, limits,
                                    _progress(progress))
        except Exception as exc:  # noqa: BLE001 - shown in the page, logged above
            return _fail(exc, 4)
        path = str(out.audio_path)
        return out.message, path, str(out.spectrogram_path), out.timeline_html, path

    def start(path: str | None, label: str) -> tuple[Any, ...]:
        try:
            h = handlers.start_history(path, label, limits)
            h, html = handlers.compare(h, 0)
        except Exception as exc:  # noqa: BLE001
            return _fail(exc, 3)
        return (render.message(f"v0 is {label}; type an instruction to edit it"), h,
                h.versions[0].path, html)

    def on_generated(path: str | None) -> tuple[Any, ...]:
        if path is None:
            return _fail(ConfigError("nothing generated yet: use the Generate tab first"), 3)
        return start(path, "the generated piece")

    def on_to_edit(path: str | None) -> tuple[Any, ...]:
        return (*on_generated(path), gr.Tabs(selected="edit"))

    def on_upload(path: str | None) -> tuple[Any, ...]:
        if path is None:  # the upload was cleared: keep the history
            return tuple(gr.skip() for _ in range(4))
        return start(path, f"upload {Path(path).name}")

    def on_edit(h: EditHistory, text: str, range_start: str, range_end: str, seed: Any,
                steps: Any, g_text: Any, g_source: Any,
                progress: Any = tracker) -> tuple[Any, ...]:
        try:
            out = handlers.edit(models, h, work_dir, text, seed, steps, g_text, g_source,
                                limits, _progress(progress), range_start, range_end)
        except Exception as exc:  # noqa: BLE001
            return _fail(exc, 3)
        return out.message, out.history, out.history.current_version().path, out.comparison_html

    def on_restore(h: EditHistory, index: int) -> tuple[Any, ...]:
        try:
            out = handlers.restore(h, index)
        except Exception as exc:  # noqa: BLE001
            return _fail(exc, 3)
        return out.message, out.history, out.history.current_version().path, out.comparison_html

    def on_analyze(path: str | None,
                   progress: Any = tracker) -> tuple[Any, ...]:
        try:
            out = handlers.analyze(models, path, work_dir, limits, _progress(progress))
        except Exception as exc:  # noqa: BLE001
            return _fail(exc, 3)
        return out.message, out.timeline_html, out.chords_html, str(out.spectrogram_path)

    with gr.Blocks(title="musigen demo", analytics_enabled=False) as app:
        gr.Markdown("# musigen: generate, edit, analyze\nMusiCoT plans a piece as CLAP thought "
                    "tokens and then writes it; InstructME edits it from a text instruction, "
                    "round by round.", elem_id="intro")
        gr.Markdown(_model_banner(models), elem_id="model-status")
        with gr.Accordion("What the demo models understand", open=True, elem_id="vocabulary-box"):
            gr.Markdown(render.vocabulary_markdown(), elem_id="vocabulary")
        generated = gr.State(None)  # path of the last generated piece
        history = gr.State(EditHistory())
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"), gr.Row():
                with gr.Column(scale=1):
                    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="gen-prompt",
                                        placeholder="calm jazz with piano and bass")
                    reference = gr.Audio(label="Style reference (optional)", type="filepath",
                                         sources=["upload"], elem_id="gen-reference")
                    with gr.Row():
                        duration = gr.Number(value=min(10.0, limits.max_duration_s),
                                             label=f"Duration (s, at most {limits.max_duration_s:g})",
                                             elem_id="gen-duration")
                        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="gen-seed")
                    with gr.Accordion("Sampling: plan and audio", open=False,
                                      elem_id="gen-sampling"):
                        t_plan = gr.Slider(0.0, 2.0, value=sampling.thought_temperature,
                                           step=0.05, label="Plan temperature",
                                           elem_id="gen-temperature-thought")
                        t_audio = gr.Slider(0.0, 2.0, value=sampling.audio_temperature,
                                            step=0.05, label="Audio temperature",
                                            elem_id="gen-temperature-audio")
                        cfg_plan = gr.Slider(0.0, 10.0, value=sampling.thought_cfg, step=0.1,
                                             label="Plan CFG scale", elem_id="gen-cfg-thought")
                        cfg_audio = gr.Slider(0.0, 10.0, value=sampling.audio_cfg, step=0.1,
                                              label="Audio CFG scale", elem_id="gen-cfg-audio")
                    gen_run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                with gr.Column(scale=2):
                    gen_status = gr.HTML(elem_id="gen-status")
                    gen_audio = gr.Audio(label="Generated piece", interactive=False,
                                         buttons=["download"], elem_id="gen-audio")
                    gen_spec = gr.Image(label="Spectrogram", interactive=False,
                                        elem_id="gen-spectrogram")
                    gen_timeline = gr.HTML(elem_id="gen-timeline")
                    gen_to_edit = gr.Button("Edit this piece", elem_id="gen-to-edit")
            with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
                with gr.Row():
                    with gr.Column(scale=1):
                        upload = gr.Audio(label="Upload a piece to edit", type="filepath",
                                          sources=["upload"], elem_id="edit-upload")
                        use_generated = gr.Button("Use the generated piece",
                                                  elem_id="edit-use-generated")
                        instruction = gr.Textbox(label="Instruction", elem_id="edit-instruction",
                                                 placeholder="remove drums / add piano / "
                                                             "remix to funk genre")
                        with gr.Row():
                            range_start = gr.Textbox(label="From (s or m:ss)", placeholder="start",
                                                     elem_id="edit-range-start")
                            range_end = gr.Textbox(label="To (s or m:ss)", placeholder="end",
                                                   elem_id="edit-range-end")
                        with gr.Accordion("Sampler", open=False, elem_id="edit-sampler"):
                            edit_seed = gr.Number(value=0, precision=0, label="Seed",
                                                  elem_id="edit-seed")
                            steps = gr.Slider(1, limits.max_steps, value=edit_cfg.steps, step=1,
                                              label="Steps", elem_id="edit-steps")
                            g_text = gr.Slider(0.0, 10.0, value=edit_cfg.guidance_text, step=0.1,
                                               label="Instruction guidance",
                                               elem_id="edit-guidance-text")
                            g_source = gr.Slider(0.0, 10.0, value=edit_cfg.guidance_source,
                                                 step=0.1, label="Source guidance",
                                                 elem_id="edit-guidance-source")
                        edit_run = gr.Button("Apply to the current version", variant="primary",
                                             elem_id="edit-run")
                    with gr.Column(scale=2):
                        edit_status = gr.HTML(elem_id="edit-status")
                        current = gr.Audio(label="Current version", interactive=False,
                                           buttons=["download"], elem_id="edit-current")
                        edit_chords = gr.HTML(elem_id="edit-chords")
                gr.Markdown("### History", elem_id="edit-history-heading")

                @gr.render(inputs=history)
                def show_history(h: EditHistory) -> None:
                    if h.empty:
                        gr.Markdown("No versions yet.", elem_id="edit-history-empty")
                        return
                    for v in h.versions:
                        mark = "  **(current)**" if v.index == h.current else ""
                        with gr.Row(elem_id=f"edit-history-row-{v.index}"):
                            gr.Markdown(v.title() + mark, elem_id=f"edit-history-title-{v.index}")
                            gr.Audio(v.path, label=f"v{v.index}", interactive=False,
                                     buttons=["download"], elem_id=f"edit-history-audio-{v.index}")
                            button = gr.Button(f"Restore v{v.index}", size="sm",
                                               elem_id=f"edit-restore-{v.index}",
                                               interactive=v.index != h.current)
                            button.click(partial(on_restore, index=v.index), history,
                                         [edit_status, history, current, edit_chords])

            with gr.Tab("Analyze", id="analyze", elem_id="tab-analyze"), gr.Row():
                with gr.Column(scale=1):
                    an_upload = gr.Audio(label="Upload a piece", type="filepath",
                                         sources=["upload"], elem_id="analyze-upload")
                    an_run = gr.Button("Analyze", variant="primary", elem_id="analyze-run")
                with gr.Column(scale=2):
                    an_status = gr.HTML(elem_id="analyze-status")
                    an_timeline = gr.HTML(elem_id="analyze-timeline")
                    gr.Markdown("**Chords**")
                    an_chords = gr.HTML(elem_id="analyze-chords")
                    an_spec = gr.Image(label="Spectrogram", interactive=False,
                                       elem_id="analyze-spectrogram")

        edit_outputs = [edit_status, history, current, edit_chords]
        # one model call at a time across tabs and sessions: a CPU has no room for two
        heavy = {"concurrency_id": "models", "concurrency_limit": 1}
        gen_run.click(on_generate, [prompt, reference, duration, seed, t_plan, t_audio, cfg_plan,
                                    cfg_audio], [gen_status, gen_audio, gen_spec, gen_timeline,
                                                 generated], **heavy)
        gen_to_edit.click(on_to_edit, generated, [*edit_outputs, tabs])
        use_generated.click(on_generated, generated, edit_outputs)
        upload.upload(on_upload, upload, edit_outputs)
        edit_inputs = [history, instruction, range_start, range_end, edit_seed, steps, g_text,
                       g_source]
        edit_run.click(on_edit, edit_inputs, edit_outputs, **heavy)
        instruction.submit(on_edit, edit_inputs, edit_outputs, **heavy)
        an_run.click(on_analyze, an_upload, [an_status, an_timeline, an_chords, an_spec], **heavy)
    return app


def serve(paths: ModelPaths, host: str = "127.0.0.1", port: int = 7860,
          work_dir: Path | None = None, preload: bool = True,
          limits: DemoLimits = DEFAULT_LIMITS) -> None:
    """Load what models exist, then serve the page until interrupted (loopback by default)."""
    gr = require_gradio()
    if not 0 < int(port) < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    models = DemoModels(paths)
    for problem in models.preload() if preload else []:
        print(f"musigen demo: warning: {problem}", flush=True)
    # uploads and results live in this run's own folders, removed when it stops
    with demo_files(work_dir) as folders:
        app = build_app(models, folders.work, limits)
        app.queue(default_concurrency_limit=1)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"musigen demo: warning: serving on {host}, reachable from other machines",
                  flush=True)
        print(f"musigen demo: http://{'[' + host + ']' if ':' in host else host}:{port}/ "
              "(Ctrl-C stops it)", flush=True)
        try:
            app.launch(server_name=host, server_port=int(port), share=False, ssr_mode=False,
                       allowed_paths=[str(folders.work)], show_error=False, quiet=True,
                       mcp_server=False, pwa=False, footer_links=[], css=render.CSS,
                       # Gradio refuses a larger upload before storing it
                       max_file_size=int(limits.max_upload_mb * 1e6),
                       theme=gr.themes.Default(font=FONTS, font_mono=MONO))
        except OSError as exc:
            raise ConfigError(f"cannot serve on {host}:{port}: {exc}") from None
        except KeyboardInterrupt:  # SIGTERM arrives as this; the folders are removed below
            pass
