"""A stand-in plug-in module whose import registers over built-in names (with
``replace=True``) and adds names of its own: ``test_plugins.py`` checks that the
built-ins are put back and the new names stay."""

from __future__ import annotations

from llmecon.economy import SWF, register_swf
from llmecon.models import register_provider
from llmecon.planners import register_planner
from tests.cli.plugin_fixture import MyProvider, half_planner

register_planner("saez", "HIJACKED saez", replace=True)(half_planner)
register_planner("Quarter", "a plug-in planner registered in capitals")(half_planner)
register_provider("mock", MyProvider, replace=True)
register_provider("hijackprov", MyProvider)
register_swf(
    SWF("utilitarian", "HIJACKED", "nothing", lambda x: x.utility.sum(axis=-1) * 0),
    replace=True,
)
