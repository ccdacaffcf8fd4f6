"""Methods: named compositions of stage functions on one contract, in an open registry.

A *method* is an ordered list of steps: preprocessing (TiltSeries → TiltSeries), one reconstruction
(TiltSeries → Volume), tracing (Volume → TracedModel), classification and optional refinement
(TracedModel → TracedModel), or any stage kind registered later.  Every stage is called as
``fn(data, ctx, **params) -> data`` (:mod:`aetbench.methods.contract`); plain functions are adapted by their
declared signature.  Methods come from aetbench (:mod:`~aetbench.methods.builtin`), :func:`register_method`, the
entry-point group ``aetbench.methods`` or a scenario's ``[methods.NAME]`` table (:mod:`~aetbench.methods.registry`);
``[method_options.NAME]`` overrides parameters (``param = value`` when the name is unique across steps, else
``"stage.param" = value``).  Results are cached under :meth:`Method.fingerprint`, the hash of the configuration and
of the code every step calls (:mod:`~aetbench.methods.fingerprint`).

Examples
--------
>>> sorted(METHODS)[:3]
['busch2026', 'fbp', 'liao2026']
>>> METHODS['resire'].with_options({'reconstruct.iterations': 10}).step('reconstruct').params['iterations']
10
"""
from __future__ import annotations

from . import contract as _contract
from . import registry as _registry
from .contract import (CONTEXT_FIELDS, STAGE_KINDS, Method, MethodResult, StageContext, StageKind, Step,
                       accepted_params, by_signature, contract_stage, register_stage_kind, run_method, stage_kind,
                       to_object_frame)
from .registry import (ENTRY_POINT_GROUP, METHODS, MethodRegistry, get_method, method_from_table, register_method,
                       scenario_methods)

__all__ = [*_contract.__all__, *_registry.__all__]
