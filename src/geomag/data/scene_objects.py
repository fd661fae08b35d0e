"""What an AID scene class says about the objects in the image: weak but real presence labels.

An AID "BaseballField" image shows a baseball diamond; a "Forest" or "Desert" image shows no bridge,
no storage tank, no airplane. Only implications that hold for (nearly) every image of a class are
listed: a class missing from IMPLIES says nothing positive, an object missing from RULES_OUT[class]
may or may not be there (vehicles appear in most scenes, ships on beaches and rivers, bridges over
rivers), so neither is asked. The object names are NWPU VHR-10's (geomag.data.loaders.nwpu).

Used for presence questions on AID images (training and held-out evaluation) and to choose
backgrounds for copy-paste composites: pasting a tennis court onto a background whose class rules
out tennis courts makes "How many tennis courts are there?" answerable exactly.
"""

from __future__ import annotations

IMPLIES: dict[str, tuple[str, ...]] = {
    "Airport": ("airplane",),
    "BaseballField": ("baseball diamond",),
    "Bridge": ("bridge",),
    "Parking": ("vehicle",),
    "Playground": ("ground track field",),
    "Stadium": ("ground track field",),
    "StorageTanks": ("storage tank",),
    "Port": ("ship",),
}

_SPORTS = ("baseball diamond", "tennis court", "basketball court", "ground track field")
_BUILT = ("airplane", "storage tank", "harbor", *_SPORTS)
_NATURAL = (*_BUILT, "bridge")  # nothing man-made but roads and the odd vehicle

RULES_OUT: dict[str, tuple[str, ...]] = {
    "BareLand": _NATURAL,
    "Desert": (*_NATURAL, "ship", "vehicle"),
    "Forest": (*_NATURAL, "ship"),
    "Meadow": (*_NATURAL, "ship"),
    "Mountain": (*_NATURAL, "ship"),
    "Farmland": (*_NATURAL, "ship"),
    "Beach": _NATURAL,
    "Pond": ("airplane", "storage tank", "harbor", *_SPORTS),
    "River": ("airplane", "storage tank", "harbor", *_SPORTS),
    "DenseResidential": ("airplane", "storage tank", "harbor", "ship", "ground track field"),
    "MediumResidential": ("airplane", "storage tank", "harbor", "ship", "ground track field"),
    "SparseResidential": ("airplane", "storage tank", "harbor", "ship", "ground track field"),
    "Church": ("airplane", "storage tank", "harbor", "ship"),
    "Commercial": ("airplane", "harbor", "ship"),
    "Center": ("airplane", "storage tank", "harbor", "ship"),
    "Square": ("airplane", "storage tank", "harbor", "ship"),
    "Park": ("airplane", "storage tank", "harbor"),
    "Resort": ("airplane", "storage tank", "harbor"),
    "School": ("airplane", "storage tank", "harbor", "ship"),
    "BaseballField": ("airplane", "storage tank", "harbor", "ship"),
    "Playground": ("airplane", "storage tank", "harbor", "ship"),
    "Stadium": ("airplane", "storage tank", "harbor", "ship"),
    "Parking": ("airplane", "harbor", "ship", *_SPORTS),
    "RailwayStation": ("airplane", "harbor", "ship", *_SPORTS),
    "Industrial": ("airplane", "harbor", "ship", *_SPORTS),
    "StorageTanks": ("airplane", "harbor", *_SPORTS),
    "Viaduct": ("airplane", "storage tank", "harbor", "ship", *_SPORTS),
}


def present(scene_class: str) -> tuple[str, ...]:
    """Objects every image of the class shows."""
    return IMPLIES.get(scene_class, ())


def absent(scene_class: str) -> tuple[str, ...]:
    """Objects no image of the class shows."""
    return RULES_OUT.get(scene_class, ())


def backgrounds_for(objects: tuple[str, ...] | list[str]) -> list[str]:
    """The AID classes whose images show none of `objects`: backgrounds a composite of them can use
    while keeping its counts exact."""
    return sorted(c for c, out in RULES_OUT.items() if set(objects) <= set(out))
