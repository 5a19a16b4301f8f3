"""SVG drawn on the server: layered graphs (DAG, lineage), timelines and charts.

Every function returns a self-contained ``<svg>`` string with its text escaped, so a
template can insert it as markup. No scripts, no external resources: the pages work
without JavaScript and the SVG files open in any browser.
"""

from conveyor.ui.svg.charts import bar_chart, histogram, line_chart
from conveyor.ui.svg.graph import GraphEdge, GraphNode, layered_graph
from conveyor.ui.svg.timeline import TimelineBar, timeline

__all__ = [
    "GraphEdge",
    "GraphNode",
    "TimelineBar",
    "bar_chart",
    "histogram",
    "layered_graph",
    "line_chart",
    "timeline",
]
