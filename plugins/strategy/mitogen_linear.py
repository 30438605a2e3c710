"""The stack playbooks' strategy: Mitogen's linear strategy from the pinned `mitogen`
package (its plugin lives inside the package, whose path depends on the venv)."""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
