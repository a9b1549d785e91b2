"""The conditioning tasks, and what the condition image of each one is.

    sketch        object outlines, 1 channel in {0, 1}
    segmentation  class-coloured masks, 3 channels
    layout        one box channel per shape class, 3 channels
    style         the plain scene, to be re-rendered in the hatched style
"""

TASKS: tuple[str, ...] = ("sketch", "segmentation", "layout", "style")
