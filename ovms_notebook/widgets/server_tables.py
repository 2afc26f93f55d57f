"""A server's graphs as HTML: the header line, the table of graphs (state, streams, side packets, why a graph
failed) and what to change in a graph's pbtxt, both for what fails here and for what `check` says a stock OVMS
would refuse. The server panel shows them live; `server_mimebundle` uses them as the static view.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ovms_notebook.errors import GraphLoadError

_GREEN, _RED, _GREY, _AMBER = "#15803d", "#b91c1c", "#6b7280", "#b45309"


def _stream_text(spec: Any) -> str:
    """A StreamSpec written back as in the pbtxt: "name", "TAG:name" or "TAG:index:name"."""
    parts = [spec.tag] if spec.tag else []
    if spec.index is not None:
        parts.append(str(spec.index))
    return ":".join([*parts, spec.name])


def _state_of(definition: Any) -> str:
    return str(getattr(definition.state, "value", definition.state))


def graphs_key(server: Any) -> tuple[str, tuple[tuple[str, str, str, str], ...]]:
    """What the header's count and the table show of the graphs: the server state, each graph's name, state,
    error and served version. When it changes (a reload added, retired or replaced a graph), header, table and
    graph picker change together."""
    return server.state, tuple((d.name, _state_of(d), str(d.error or ""), d.spec.md5 if d.spec else "")
                               for d in server.graphs)


def header_html(server: Any, graphs: Sequence[Any] | None = None) -> str:
    """One line: address, state, open streams, available graphs (of `graphs`, default the server's), the model
    entries config.json serves (what a graph's subgraphs may infer on)."""
    graphs = list(server.graphs if graphs is None else graphs)
    available = sum(1 for d in graphs if d.available)
    open_streams = len(server.sessions)
    colour = _GREEN if server.state == "running" else _GREY
    models = sorted(server.repository.models.names)
    served = (f' · <span title="{html.escape(", ".join(models))}">{len(models)} model{"" if len(models) == 1 else "s"}'
              f" ({html.escape(', '.join(models[:3]))}{', …' if len(models) > 3 else ''})</span>") if models else ""
    return (
        f'<div style="font-size:13px"><b>ovms_notebook server</b> on <code>{html.escape(server.address)}</code>'
        f' · <span style="color:{colour}"><b>{html.escape(server.state)}</b></span>'
        f"{'' if getattr(server, 'tls', 'off') == 'off' else ' · ' + html.escape(server.tls)}"
        f" · {open_streams} open stream{'' if open_streams == 1 else 's'}"
        f" · {available} of {len(graphs)} graph{'' if len(graphs) == 1 else 's'} available{served}</div>"
    )


def graphs_table_html(server: Any, graphs: Sequence[Any] | None = None) -> str:
    """An HTML table of the server's graphs (or of `graphs`): name, status (and the reason when failed), streams,
    side packets."""
    cell = 'style="padding:2px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #e5e7eb"'
    rows = [
        '<table style="border-collapse:collapse;font-size:12px"><thead><tr>'
        + "".join(f"<th {cell}>{name}</th>" for name in ("graph", "status", "inputs", "outputs", "side packets"))
        + "</tr></thead><tbody>"
    ]
    stopped = server.state != "running"  # the graphs stay loaded, but nothing serves them
    models = frozenset(server.repository.models.names)
    for definition in server.graphs if graphs is None else graphs:
        state = _state_of(definition)
        colour = _GREEN if definition.available and not stopped else _GREY if state == "RETIRED" or stopped else _RED
        if colour == _GREEN and fails_here(definition):
            colour = _AMBER  # loaded, but its first request fails for a reason shown below
        status = f'<span style="color:{colour}">&#9679; {html.escape(state)}</span>'
        if stopped:
            status += f' <span style="color:{_GREY}">(server {html.escape(server.state)})</span>'
        if definition.error:
            reason = "<br>".join(html.escape(line) for line in definition.error.splitlines())
            status += f'<br><span style="color:{_RED}">{reason}</span>'
        status += advice_html(definition, models)
        spec = definition.spec
        inputs = ", ".join(_stream_text(s) for s in spec.inputs.values()) if spec else ""
        outputs = ", ".join(_stream_text(s) for s in spec.outputs.values()) if spec else ""
        sides = ", ".join(spec.side_packets) if spec else ""
        rows.append(
            f"<tr><td {cell}><code>{html.escape(definition.name)}</code></td><td {cell}>{status}</td>"
            + "".join(f"<td {cell}><code>{html.escape(text)}</code></td>" for text in (inputs, outputs, sides))
            + "</tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


#: Findings about a graph that fails here too (the rest only fail on OVMS).
FAILS_HERE = frozenset({"untagged-image-input", "untagged-proto-input", "side-packet-type", "model-file-missing"})


_checks: dict[tuple[Any, ...], list[Any]] = {}  # check_graph's findings per (graph file version, models served)
_CHECKS_MAX = 256


def ovms_findings(entry: Any, models: frozenset[str]) -> list[Any]:
    """`check`'s errors and warnings for one graph entry (cached per graph file version and models served): the
    panel says what the Portability button and `ovms-notebook check` say, no less."""
    from ovms_notebook.portability.check import check_graph

    try:
        key = (str(entry.graph_path), entry.graph_path.stat().st_mtime_ns, str(entry.base_path), models)
    except OSError:
        return []
    if key not in _checks:
        if len(_checks) >= _CHECKS_MAX:
            _checks.clear()
        report = check_graph(entry, models=models)
        _checks[key] = [f for f in report.findings if f.severity in ("error", "warning")]
    return list(_checks[key])


def fails_here(definition: Any) -> list[Any]:
    """The fixable shapes that fail here too (an untagged image input...), found before the graph runs: of the
    version being served when there is one (the file may have changed since), else of the file."""
    from ovms_notebook.portability.fixes import graph_advice, text_advice

    entry = getattr(definition, "entry", None)
    if entry is None:
        return []
    spec = definition.spec
    found = (text_advice(spec.text, entry.base_path, spec.subgraphs) if spec is not None
             else graph_advice(entry.graph_path, entry.base_path))
    return [f for f in found if f.kind in FAILS_HERE]


def advice_html(definition: Any, models: frozenset[str] = frozenset()) -> str:
    """What to change in the graph's pbtxt: what fails here (fixable shapes found before it runs) in the open,
    what a stock OVMS would refuse or do otherwise (`check`'s findings) folded, each with the lines to write."""
    from ovms_notebook.portability.report import finding_html

    entry = getattr(definition, "entry", None)
    if entry is None:
        return ""
    here = fails_here(definition)
    # a load error is the status's own text already
    ovms = [f for f in ovms_findings(entry, models) if f.kind not in FAILS_HERE and f.kind != "graph-load"]
    html_text = _changed_html(definition, entry)
    if here:
        html_text += '<ul style="margin:2px 0;padding-left:1.2em">' + "".join(finding_html(f) for f in here) + "</ul>"
    if ovms:  # runs here, fails or differs on OVMS: folded
        errors = sum(f.severity == "error" for f in ovms)
        counts = [f"{errors} to change"] if errors else []
        counts += [f"{len(ovms) - errors} to know"] if len(ovms) > errors else []
        html_text += (
            f'<details><summary style="color:{_GREY}">on OVMS: {", ".join(counts)}</summary>'
            '<ul style="margin:2px 0;padding-left:1.2em">' + "".join(finding_html(f) for f in ovms) + "</ul></details>"
        )
    return html_text


def _changed_html(definition: Any, entry: Any) -> str:
    """A note when the graph file on disk is not the version being served: what the row says is the served
    version's, and only a reload serves the file (as OVMS's config reload does)."""
    import hashlib

    spec = definition.spec
    try:
        text = entry.graph_path.read_text()
    except OSError:
        return ""
    if spec is None or not spec.md5 or hashlib.md5(text.encode()).hexdigest() == spec.md5:
        return ""
    return (f'<br><span style="color:{_AMBER}">{html.escape(entry.graph_path.name)} changed since it was loaded: '
            "the status and notes are the served version's; <code>server.reload()</code> serves the file</span>")


def graph_source(definition: Any) -> tuple[Any, dict[str, str]] | None:
    """(what to draw, the folder's subgraphs) for a graph, loaded or not: a loaded graph's spec, else its pbtxt
    file as written; None when there is no file to read or it does not parse."""
    if definition.spec is not None:
        return definition.spec, dict(definition.spec.subgraphs)
    from ovms_notebook.framework.protos import parse_graph_config
    from ovms_notebook.framework.subgraphs import folder_subgraphs

    entry = definition.entry
    try:
        config = parse_graph_config(entry.graph_path.read_text())
    except Exception:  # unreadable or not pbtxt: the reason is the load error shown instead
        return None
    try:
        own = folder_subgraphs(entry.base_path, entry.graph_path)
    except GraphLoadError:
        own = {}
    return config, own
