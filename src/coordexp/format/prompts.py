"""The fixed dense-detection prompts (system and user), in code on purpose.

Prompts are part of the objective: a prompt edited in a YAML file would change what the
model is trained on without any trace in the code review, so there is no `prompts:`
config section. What varies is chosen by three closed enums:

- ``field_order``: ``desc_first`` or ``geometry_first``, the key order inside each record
  (both prompts state it, and the wording follows the order);
- ``object_ordering``: ``sorted`` (records ordered by (minY, minX)) or ``random``
  (order unrestricted, an ablation);
- ``prompt_variant``: ``default`` (open vocabulary) or ``coco_80`` (closed class list).
"""

from __future__ import annotations

from coordexp.errors import CoordExpError

FIELD_ORDERS = ("desc_first", "geometry_first")
OBJECT_ORDERINGS = ("sorted", "random")
PROMPT_VARIANTS = ("default", "coco_80")

# The 80 COCO detection categories, in their canonical id order.
COCO_80_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

# The field-order sentences: each states which key comes first, so a prompt can never
# describe one order while the assistant text is rendered in the other.
_FIELD_ORDER_RULE = {
    "desc_first": 'Each record has exactly two keys, in this order: "desc" first, then one geometry key '
    '("bbox_2d" or "poly").',
    "geometry_first": 'Each record has exactly two keys, in this order: one geometry key ("bbox_2d" or "poly") '
    'first, then "desc".',
}
_FIELD_ORDER_ASK = {
    "desc_first": 'Write every record with "desc" before its geometry ("bbox_2d" or "poly").',
    "geometry_first": 'Write every record with its geometry ("bbox_2d" or "poly") before "desc".',
}
_ORDERING_RULE = {
    "sorted": "Order the records by (minY, minX) of each object: top to bottom, then left to right.",
    "random": "The order of the records is unrestricted.",
}


class PromptConfigError(CoordExpError, ValueError):
    """An unknown field order, object ordering or prompt variant."""


def _check(field_order: str, object_ordering: str, prompt_variant: str) -> None:
    for name, value, allowed in (
        ("field_order", field_order, FIELD_ORDERS),
        ("object_ordering", object_ordering, OBJECT_ORDERINGS),
        ("prompt_variant", prompt_variant, PROMPT_VARIANTS),
    ):
        if value not in allowed:
            raise PromptConfigError(f"{name}: unknown value {value!r}; use one of {', '.join(allowed)}")


def coco_80_list() -> str:
    return ", ".join(COCO_80_CLASSES)


def system_prompt(field_order: str, object_ordering: str = "sorted", prompt_variant: str = "default") -> str:
    """The dense-detection system prompt: the full output contract, one rule per line."""
    _check(field_order, object_ordering, prompt_variant)
    lines = [
        "You are an object detector. Answer with exactly one CoordJSON object of the form "
        '{"objects": [...]} and nothing else: no prose, no code fences.',
        'The top-level object has exactly one key, "objects"; its value is an array of records, one per object.',
        _FIELD_ORDER_RULE[field_order],
        '"desc" is a short plain-text description of the object.',
        '"bbox_2d" is [x1, y1, x2, y2], the top-left then the bottom-right corner, with x1 <= x2 and y1 <= y2.',
        '"poly" is a flat list [x1, y1, x2, y2, ...] of at least 3 vertices, starting at the top-most '
        "(then left-most) vertex and going clockwise.",
        "Every coordinate is a bare, unquoted token <|coord_N|> with N an integer in [0, 999]: "
        "0 is the left or top edge of the image, 999 the right or bottom edge.",
        'Write the whole answer on a single line, with ", " between items and ": " after keys.',
        _ORDERING_RULE[object_ordering],
        'If there are no objects, answer {"objects": []}.',
    ]
    if prompt_variant == "coco_80":
        lines.append(
            f'"desc" must be exactly one canonical class name from this list of 80 COCO classes: {coco_80_list()}.'
        )
    return "\n".join(lines)


def user_prompt(field_order: str, object_ordering: str = "sorted", prompt_variant: str = "default") -> str:
    """The user turn's text: the request, restating field order and ordering."""
    _check(field_order, object_ordering, prompt_variant)
    parts = [
        "Detect every object in the image and answer with a single CoordJSON object.",
        _FIELD_ORDER_ASK[field_order],
        _ORDERING_RULE[object_ordering],
    ]
    if prompt_variant == "coco_80":
        parts.append(f'Restrict "desc" to this COCO-80 class list: {coco_80_list()}.')
    return " ".join(parts)
