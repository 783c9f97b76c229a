"""The registered scenarios. A scenario not built yet is simply not here (its weight is ignored)."""

from __future__ import annotations

from soaktui.scenarios.base import Scenario
from soaktui.scenarios.concurrent_load import ConcurrentLoad
from soaktui.scenarios.large_context import LargeContext
from soaktui.scenarios.prompt_variety import PromptVariety
from soaktui.scenarios.provider_failover import ProviderFailover
from soaktui.scenarios.simple_inference import SimpleInference
from soaktui.scenarios.streaming import Streaming
from soaktui.scenarios.structured_output import StructuredOutput
from soaktui.scenarios.tool_calling import ToolCalling

REGISTRY: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in (
        PromptVariety,
        SimpleInference,
        Streaming,
        ConcurrentLoad,
        LargeContext,
        ProviderFailover,
        StructuredOutput,
        ToolCalling,
    )
}
