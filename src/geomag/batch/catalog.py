"""STAC in: a STAC Item, ItemCollection, static Catalog / Collection (a JSON file or URL) or a STAC
API's search, filtered by --bbox / --datetime -> one `Request` per (item's --asset, prompt).

pystac reads the JSON (relative hrefs resolved against the file's own location); a root that
conforms to STAC API item search is searched with pystac-client instead (the API filters, with
--max-items as a bound). The assets are not opened here: each job's worker reads its own window of
the asset (`geomag.sources`), so a batch over 10,000 COG scenes downloads none of them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from geomag.batch.jobs import ImageRef, Request, StacRef, requests_from
from geomag.errors import GeoMagError
from geomag.sources import is_remote, redact

if TYPE_CHECKING:
    import pystac

SEARCH_CONFORMANCE = "item-search"
MAX_ITEMS = 1000  # the default bound of a STAC API search


@dataclass(frozen=True)
class StacQuery:
    """What to take from a STAC source: the asset key, and the items' filters (None: all)."""

    asset: str
    bbox: tuple[float, float, float, float] | None = None  # WGS84 lon/lat: west, south, east, north
    datetime: str | None = None  # an instant or an interval a/b (RFC 3339; '..' or '' for open ends)
    collections: tuple[str, ...] = ()  # API search only
    max_items: int = MAX_ITEMS  # API search only

    @classmethod
    def parse(
        cls,
        asset: str,
        bbox: str | None = None,
        when: str | None = None,
        collections: Sequence[str] = (),
        max_items: int | None = None,
    ) -> StacQuery:
        """From the CLI's --asset, --bbox 'W,S,E,N', --datetime, --collection, --max-items (checked)."""
        if not asset.strip():
            raise GeoMagError("--asset is empty: give an asset key such as visual")
        box = None
        if bbox is not None:
            try:
                values = tuple(float(v) for v in bbox.split(","))
            except ValueError:
                values = ()
            if len(values) != 4 or not (values[0] <= values[2] and values[1] <= values[3]):
                raise GeoMagError(
                    f"--bbox {bbox!r}: give west,south,east,north in degrees, e.g. 10.1,45.2,10.4,45.5"
                )
            box = (values[0], values[1], values[2], values[3])
        if when is not None:
            interval(when)  # checked now
        if max_items is not None and max_items < 1:
            raise GeoMagError("--max-items must be at least 1")
        return cls(asset.strip(), box, when, tuple(collections), max_items or MAX_ITEMS)


def _instant(text: str, end: bool) -> datetime | None:
    text = text.strip()
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise GeoMagError(f"--datetime: {text!r} is not an RFC 3339 date or time (e.g. 2024-06-01)") from None
    if len(text) == 10 and end:  # a date as the end of an interval: that whole day
        value = datetime.combine(value.date(), time.max)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def interval(text: str) -> tuple[datetime | None, datetime | None]:
    """'2024-01-01/2024-12-31', '2024-06-01' (that day), '../2024-01-01' -> (start, end), UTC."""
    if "/" in text:
        a, b = text.split("/", 1)
        start, end = _instant(a, end=False), _instant(b, end=True)
    else:
        start, end = _instant(text, end=False), _instant(text, end=True)
    if start is not None and end is not None and start > end:
        raise GeoMagError(f"--datetime {text!r}: the start is after the end")
    return start, end


def _item_times(item: pystac.Item) -> tuple[datetime | None, datetime | None]:
    meta = item.common_metadata
    start = meta.start_datetime or item.datetime
    end = meta.end_datetime or item.datetime
    fix = [t if t is None or t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end)]
    return fix[0], fix[1]


def matches(item: pystac.Item, query: StacQuery) -> bool:
    """Whether `item` lies in the query's bbox (its own bbox intersects) and time (overlaps)."""
    if query.bbox is not None:
        if not item.bbox:
            return False
        b = item.bbox
        west, south, east, north = (b[0], b[1], b[3], b[4]) if len(b) == 6 else (b[0], b[1], b[2], b[3])
        qw, qs, qe, qn = query.bbox
        if west > qe or east < qw or south > qn or north < qs:
            return False
    if query.datetime is not None:
        start, end = interval(query.datetime)
        item_start, item_end = _item_times(item)
        if item_start is None and item_end is None:
            return False
        if end is not None and item_start is not None and item_start > end:
            return False
        if start is not None and item_end is not None and item_end < start:
            return False
    return True


def _read_json(source: str) -> dict:
    import pystac

    try:
        text = pystac.StacIO.default().read_text(source)
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GeoMagError(f"{redact(source)} is not JSON ({exc.msg})") from None
    except (OSError, ValueError) as exc:  # urllib's HTTPError / URLError are OSErrors
        raise GeoMagError(f"cannot read the STAC source {redact(source)}: {exc}") from None
    if not isinstance(data, dict):
        raise GeoMagError(f"{redact(source)} is not a STAC object (a JSON object with a type)")
    return data


def is_stac_json(source: str) -> bool:
    """True for a local .json file that holds a STAC object (without reading a URL)."""
    p = Path(source)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and ("stac_version" in data or data.get("type") == "FeatureCollection")


def _conforms_to_search(data: dict) -> bool:
    return any(SEARCH_CONFORMANCE in str(c) for c in data.get("conformsTo", [])) or any(
        link.get("rel") == "search" for link in data.get("links", []) if isinstance(link, dict)
    )


def read_items(source: str, query: StacQuery) -> list[pystac.Item]:
    """The items of `source` that match `query`, in the source's order."""
    import pystac

    if source.lower().startswith(("s3://", "/vsi")):
        raise GeoMagError(
            f"{redact(source)}: read STAC JSON from a file or over https:// (the assets may be s3://)"
        )
    location = source if is_remote(source) else str(Path(source).absolute())
    data = _read_json(location)
    kind = data.get("type")
    try:
        if kind == "Feature":
            items: Iterable[pystac.Item] = [pystac.Item.from_dict(data, href=location)]
        elif kind == "FeatureCollection":
            collection = pystac.ItemCollection.from_dict(data, preserve_dict=False)
            items = list(collection)
            for item in items:  # relative asset hrefs: against the collection's own location
                if item.get_self_href() is None:
                    item.set_self_href(location)
        elif kind in ("Catalog", "Collection"):
            if _conforms_to_search(data) and is_remote(location):
                return _search(location, query)
            catalog = pystac.read_dict(data, href=location)
            assert isinstance(catalog, pystac.Catalog)
            items = catalog.get_items(recursive=True)
        else:
            raise GeoMagError(
                f"{redact(source)} is not a STAC Item, ItemCollection or Catalog (its type is {kind!r})"
            )
        return [item for item in items if matches(item, query)]
    except pystac.STACError as exc:
        raise GeoMagError(f"{redact(source)}: not valid STAC ({exc})") from None
    except (OSError, json.JSONDecodeError) as exc:  # a child or item file that is missing or not JSON
        raise GeoMagError(f"{redact(source)}: a linked STAC file cannot be read ({exc})") from None


def _search(url: str, query: StacQuery) -> list[pystac.Item]:
    """The items of a STAC API search (the API applies bbox and datetime)."""
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(url)
        search = client.search(
            bbox=list(query.bbox) if query.bbox else None,
            datetime=query.datetime,
            collections=list(query.collections) or None,
            max_items=query.max_items,
        )
        return list(search.items())
    except (APIError, OSError, ValueError) as exc:
        raise GeoMagError(f"the STAC API search at {redact(url)} failed: {exc}") from None


def asset_image(item: pystac.Item, asset: str) -> ImageRef:
    """The asset's absolute href: a URL as it is, a file (or file:// URL) as a Path."""
    href = item.assets[asset].get_absolute_href()
    if href is None:
        raise GeoMagError(f"item {item.id}: the asset {asset!r} has a relative href and the item no location")
    if href.lower().startswith("file://"):
        return Path(unquote(urlsplit(href).path))
    return href if is_remote(href) else Path(href)


def stac_ref(item: pystac.Item, asset: str) -> StacRef:
    meta = item.common_metadata
    iso = [
        None if t is None else t.isoformat() for t in (item.datetime, meta.start_datetime, meta.end_datetime)
    ]
    href = item.get_self_href()
    return StacRef(
        item=item.id,
        asset=asset,
        item_href=None if href is None else (redact(href) if is_remote(href) else href),
        collection=item.collection_id,
        datetime=iso[0],
        start_datetime=iso[1],
        end_datetime=iso[2],
    )


def stac_requests(source: str, prompts: Sequence[str], query: StacQuery) -> list[Request]:
    """One request per (matching item that has the asset, prompt); items without it are left out
    (one warning); none with it is an error that names the assets the items have."""
    if not prompts:
        raise GeoMagError("give --prompt TEXT or --prompts FILE for the STAC items")
    items = read_items(source, query)
    if not items:
        raise GeoMagError(f"no STAC item of {redact(source)} matches the --bbox / --datetime filters")
    having = [item for item in items if query.asset in item.assets]
    if not having:
        keys = sorted({k for item in items for k in item.assets})
        raise GeoMagError(
            f"no item of {redact(source)} has the asset {query.asset!r}; its items' assets: "
            f"{', '.join(keys) or 'none'} (choose with --asset)"
        )
    if len(having) < len(items):
        missing = [item.id for item in items if query.asset not in item.assets]
        warnings.warn(
            f"{len(missing)} STAC item(s) have no asset {query.asset!r} and are left out "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
            stacklevel=2,
        )
    return [
        Request(asset_image(item, query.asset), prompt, None, stac_ref(item, query.asset))
        for item in having
        for prompt in prompts
    ]


def batch_requests(source: str, prompts: Sequence[str], query: StacQuery | None) -> list[Request]:
    """The requests of `geomag batch SOURCE`: a STAC source with --asset, else `requests_from` (and
    a STAC JSON given without --asset is refused with the asset keys it has)."""
    if query is not None:
        return stac_requests(source, prompts, query)
    looks_stac = is_stac_json(source) or (
        is_remote(source) and source.split("?")[0].lower().endswith(".json")
    )
    if looks_stac:
        raise GeoMagError(f"SOURCE {redact(source)} is STAC JSON: choose the asset to parse with --asset KEY")
    return requests_from(source, prompts)
