"""/api/v1/names: what each code is called (hub.names), for the console and scripts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.permissions import Capability, allowed
from hub.names import in_language

router = APIRouter(tags=["names"])

Codes = dict[str, str]


class Vocabulary(BaseModel):
    """code → name, per kind of code."""

    priorities: Codes = Field(
        description="the whistles: emergency 应急哨, major 攻坚哨, routine 日常哨"
    )
    statuses: Codes = Field(description="incident states")
    close_reasons: Codes
    actions: Codes = Field(description="actions on an incident, as a button says them")
    audit_entries: Codes = Field(
        description="what an incident's timeline says happened: every action (past tense) and"
        " what the hub records (report, attach, escalate, ...)"
    )
    categories: Codes = Field(description="incident categories (an operator's own: its code)")
    device_types: Codes
    unit_kinds: Codes
    kinds: Codes = Field(description="signal kinds")
    rules: Codes = Field(description="the built-in rules, by id")


class Names(BaseModel):
    """Every vocabulary in each language the hub speaks."""

    model_config = ConfigDict(populate_by_name=True)

    zh_cn: Vocabulary = Field(alias="zh-CN")
    en: Vocabulary


@router.get("/names", response_model_by_alias=True)
async def names(_: Annotated[Principal, Depends(allowed(Capability.READ_INCIDENT))]) -> Names:
    """The zh-CN and English name of every code the API returns (categories, kinds, statuses,
    actions, audit entries, ...): the console shows these, messages and exports say them."""
    return Names(
        zh_cn=Vocabulary.model_validate(in_language("zh-CN")),
        en=Vocabulary.model_validate(in_language("en")),
    )
