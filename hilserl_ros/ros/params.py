"""Declare node parameters from one table, with descriptors, ranges and live validation.

Every node declares its parameters through :func:`declare`. A ``SetParameters`` call (what
``ros2 param set`` does) is checked by rclpy against the declared type and range, then by
:class:`ParameterTable` for non-finite values and the parameter's own validator; a refused
value comes back with a reason and changes nothing. Accepted changes reach the node through
``on_change`` handlers, which run after the new value is in place.

A number is taken as the number it is, whatever the sender's type: a double parameter given
``4`` (a launch argument, ``make replay RATE=4``, ``ros2 param set ... 4``) is 4.0, and one
given a string that reads as a number is that number (``ros2 param set`` parses its value as
YAML, where ``nan`` and ``1e9`` are strings): ``nan`` then meets the finiteness check and is
refused with that reason, not with "expected 'Type.DOUBLE' got 'Type.STRING'". An integer
parameter given a whole double (``2.0``) is 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

Validator = Callable[[Any], "str | None"]  # returns a reason to refuse, or None


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    min: float | None = None  # inclusive range; both bounds or neither
    max: float | None = None
    step: float = 0.0  # 0 = any value in range
    read_only: bool = False  # fixed at start (e.g. network sizes, ports)
    validator: Validator | None = None
    unit: str = ""

    def descriptor(self) -> ParameterDescriptor:
        text = self.description + (f" [{self.unit}]" if self.unit else "")
        desc = ParameterDescriptor(name=self.name, description=text, read_only=self.read_only)
        if self.min is not None and self.max is not None:
            if isinstance(self.default, bool):
                raise TypeError(f"{self.name}: a bool parameter cannot have a range")
            if isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(self.min), to_value=int(self.max), step=int(self.step))]
            else:
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(self.min), to_value=float(self.max), step=float(self.step))
                ]
            desc.additional_constraints = f"{self.min} <= {self.name} <= {self.max}"
        return desc


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


class ParameterTable:
    """The declared parameters of one node and what to do when they change."""

    def __init__(self, node: Node, specs: Iterable[ParamSpec]):
        self.node = node
        self.specs = {s.name: s for s in specs}
        self._handlers: dict[str, list[Callable[[Any], None]]] = {}
        overrides = getattr(node, "_parameter_overrides", {})  # -p and parameter files, before declaring
        for name, param in list(overrides.items()):
            if name in self.specs:
                overrides[name] = self._as_declared(param)
        for spec in self.specs.values():
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
        # values from a parameter file or -p never pass through the set callback: check them
        # here, so a bad start-up value stops the node with the reason instead of running on it
        start = self._validate([node.get_parameter(name) for name in self.specs])
        if not start.successful:
            raise ValueError(f"{node.get_name()}: bad start-up parameter: {start.reason}")
        node.add_pre_set_parameters_callback(lambda params: [self._as_declared(p) for p in params])
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def __getitem__(self, name: str) -> Any:
        return self.node.get_parameter(name).value

    def values(self) -> dict[str, Any]:
        return {name: self[name] for name in self.specs}

    def on_change(self, name: str, handler: Callable[[Any], None]) -> None:
        """Call ``handler(new_value)`` after ``name`` was changed by a SetParameters call."""
        if name not in self.specs:
            raise KeyError(f"{name} is not a declared parameter of {self.node.get_name()}")
        self._handlers.setdefault(name, []).append(handler)

    def bind_rate(self, name: str, timer) -> None:
        """Keep ``timer`` firing at the rate (Hz) held by parameter ``name``, live."""
        def retime(rate: float) -> None:
            timer.timer_period_ns = int(1e9 / rate)
            timer.reset()

        self.on_change(name, retime)

    def _as_declared(self, param: Parameter) -> Parameter:
        """``param`` with a number converted to its parameter's declared kind (see the module)."""
        spec = self.specs.get(param.name)
        if spec is None or isinstance(spec.default, bool):
            return param
        value = param.value
        if isinstance(spec.default, float):
            if param.type_ == Parameter.Type.INTEGER:
                return Parameter(param.name, Parameter.Type.DOUBLE, float(value))
            if param.type_ == Parameter.Type.STRING:
                try:
                    return Parameter(param.name, Parameter.Type.DOUBLE, float(value.strip()))
                except ValueError:
                    return param  # not a number: rclpy refuses the type
        elif isinstance(spec.default, int) and param.type_ == Parameter.Type.DOUBLE:
            if math.isfinite(value) and value == int(value):
                return Parameter(param.name, Parameter.Type.INTEGER, int(value))
        return param

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            spec = self.specs.get(param.name)
            if spec is None:
                continue  # not ours (e.g. use_sim_time): rclpy handles it
            value = param.value
            if param.type_ == Parameter.Type.NOT_SET:
                return SetParametersResult(successful=False, reason=f"{param.name} cannot be undeclared")
            if not _finite(value):
                return SetParametersResult(successful=False, reason=f"{param.name} must be finite, got {value}")
            if spec.validator is not None:
                reason = spec.validator(value)
                if reason:
                    return SetParametersResult(successful=False, reason=f"{param.name}: {reason}")
        return SetParametersResult(successful=True)

    def _apply(self, params: list[Parameter]) -> None:
        for param in params:
            for handler in self._handlers.get(param.name, ()):
                handler(param.value)
            spec = self.specs.get(param.name)
            if spec is not None and not spec.read_only:
                self.node.get_logger().info(f"parameter {param.name} set to {param.value}")


def declare(node: Node, specs: Iterable[ParamSpec]) -> ParameterTable:
    return ParameterTable(node, specs)


PARAMETER_TYPE_NAMES = {
    ParameterType.PARAMETER_BOOL: "bool",
    ParameterType.PARAMETER_INTEGER: "integer",
    ParameterType.PARAMETER_DOUBLE: "double",
    ParameterType.PARAMETER_STRING: "string",
}


def observation_params(observation_help: str) -> list[ParamSpec]:
    """The parameters that pick the observation description (config/observation/<task>.yaml);
    the actor, the learner and /sim_camera read the same one (launch arguments task, observation)."""
    return [
        ParamSpec("task", "reach", "task whose observation description is read (config/observation/<task>.yaml)",
                  read_only=True),
        ParamSpec("observation", "state", observation_help, read_only=True),
        ParamSpec("observation_file", "", "the description's file; empty = config/observation/<task>.yaml",
                  read_only=True),
    ]
