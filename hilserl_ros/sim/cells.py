"""Seeded visual variations ("cells") of the simulated SO-101 cell, no ROS.

Why: a camera-based policy trained in simulation only ever sees one rendered cell, so a
success rate measured there says nothing about whether it learned from the pixels what
matters (arm, cube, goal) or memorised the picture. A cell here is the same physical scene
drawn differently, as another bench on another day would look: the front camera a few
centimetres and degrees off, the wrist camera's mount slightly different, other lights,
another table top, another cube colour, a few objects lying beside the workspace, and another
camera sensor (noise, blur, white balance, exposure). Training in the shipped cell and
evaluating in unseen cells checks that learning from pixels generalises.

- ``SHIPPED = None``: the shipped cell is *no* cell (``SO101World(cell=None)``); its renders
  are bit-identical to those without this module. Seed 0 is an ordinary cell like any other.
- :func:`sample_cell` draws every value of a :class:`VisualCell` from its seed (deterministic).
- :func:`apply_to_spec` changes only what is drawn (materials, textures, rgba, lights, the
  cameras, visual-only distractor geoms with contype = conaffinity = 0): physics is the
  shipped cell's to the bit.
- :func:`apply_effects` is the camera sensor, applied to each rendered frame: its noise is
  drawn anew for every frame from the caller's generator, its parameters are the cell's.

    python -m hilserl_ros.sim.cells --cells 0 1 2 3 --out /tmp/cells.png

renders the shipped cell and the given cells, front and wrist camera, into a contact sheet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402

SHIPPED = None  # the shipped cell: no VisualCell at all (not seed 0)

# ranges of the draws (each value uniform in it unless said otherwise)
FRONT_OFFSET = 0.05  # m, each axis of the front camera's position
FRONT_ROTATION = 5.0  # deg, yaw / pitch / roll about the camera's own axes
FRONT_FOVY = 6.0  # deg
WRIST_OFFSET = 0.01  # m
WRIST_ROTATION = 5.0  # deg
WRIST_FOVY = 5.0  # deg
HEADLIGHT_SCALE = ((0.6, 1.3), (0.6, 1.4))  # ambient, diffuse (x the shipped .5 and .4)
LIGHT_SCALE = (0.6, 1.3)  # the scene lights' diffuse
LIGHT_TILT = 25.0  # deg, the top light's direction off vertical
TINT = 0.12  # +- per channel of the lights' colour (then normalised to mean 1)
FLOOR_KINDS = ("flat", "checker", "gradient", "noise")
FLOOR_REPEAT = (1.0, 8.0)
CUBE_FLOOR_DISTANCE = 0.5  # RGB distance (0-1 per channel) of the cube to the floor's colours
CUBE_MIN_DISTANCE = 0.35  # ... to the arm's and the reach target's, and of the floor to the target
TARGET_RGB = (0.1, 0.9, 0.2)  # the reach goal marker (world.py): never recoloured, and no cube looks like it
DISTRACTORS = (0, 3)  # how many (inclusive)
DISTRACTOR_SIZE = (0.01, 0.04)  # m, full size (edge, diameter)
NOISE_SIGMA = (0.0, 6.0)  # on 0-255
BLUR_SIGMA = (0.0, 1.0)  # px
GAIN = (0.85, 1.15)  # per channel
BRIGHTNESS = 12.0  # +- on 0-255
# colours the SO-101's printed parts are commonly printed in (the shipped one first)
ARM_PALETTE = ((1.0, 0.82, 0.12), (1.0, 0.5, 0.1), (0.92, 0.92, 0.9), (0.6, 0.6, 0.62), (0.85, 0.15, 0.12),
               (0.15, 0.35, 0.85), (0.2, 0.7, 0.9), (0.25, 0.25, 0.27))
ARM_SERVO_MATERIALS = ("sts3215_03a_v1_material", "sts3215_03a_no_horn_v1_material")  # black servos: left alone


@dataclass(frozen=True)
class VisualCell:
    """Every drawn value of one cell (angles in degrees, lengths in metres, colours RGB(A) 0-1)."""

    seed: int
    front_offset: tuple  # (x, y, z) m, world frame
    front_rotation: tuple  # (yaw, pitch, roll) deg, about the camera's up, right and optical axes
    front_fovy_delta: float  # deg
    wrist_offset: tuple  # m, gripper frame
    wrist_rotation: tuple  # deg
    wrist_fovy_delta: float  # deg
    headlight_ambient: float  # scale of the shipped headlight ambient
    headlight_diffuse: float  # scale of the shipped headlight diffuse
    light_diffuse: tuple  # scale of each scene light's diffuse
    light_direction: tuple  # the top light's direction (unit)
    side_light_pos: tuple  # the light that aims at the cube
    tint: tuple  # RGB multiplier of every light
    floor_kind: str  # flat | checker | gradient | noise
    floor_rgb1: tuple
    floor_rgb2: tuple
    floor_repeat: float  # texture repeats per metre (texuniform)
    skybox_rgb: tuple
    arm_rgb: tuple  # the printed parts
    cube_rgba: tuple
    distractors: tuple  # of dicts: type, pos, size, rgba
    noise_sigma: float
    blur_sigma: float
    gain: tuple  # per channel
    brightness: float  # offset on 0-255

    def to_dict(self) -> dict:
        return asdict(self)


def _r(x, digits: int = 4):
    if isinstance(x, (list, tuple, np.ndarray)):
        return tuple(_r(v, digits) for v in x)
    return round(float(x), digits)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    import colorsys
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def sample_cell(seed: int) -> VisualCell:
    """The cell of ``seed``: the same seed, the same cell (numpy's default_rng)."""
    rng = np.random.default_rng([int(seed), 0xCE11])
    u = rng.uniform
    kind = FLOOR_KINDS[rng.integers(len(FLOOR_KINDS))]
    for _ in range(200):  # a table top of muted colours, clearly unlike the reach goal marker
        floor1 = _hsv(u(), u(0.0, 0.6), u(0.1, 0.85))
        contrast = u(0.08, 0.35) * rng.choice([-1.0, 1.0])
        floor2 = np.clip(floor1 + contrast * u(0.6, 1.0, 3), 0.0, 1.0)
        if min(np.linalg.norm(f - TARGET_RGB) for f in (floor1, floor2)) >= CUBE_MIN_DISTANCE:
            break
    arm = np.array(ARM_PALETTE[rng.integers(len(ARM_PALETTE))]) * u(0.9, 1.05)
    arm = np.clip(arm, 0.0, 1.0)
    for _ in range(500):  # an opaque cube clearly unlike the floor, the arm and the reach goal marker
        cube = _hsv(u(), u(0.55, 1.0), u(0.45, 1.0))
        if min(np.linalg.norm(cube - f) for f in (floor1, floor2)) >= CUBE_FLOOR_DISTANCE and \
                min(np.linalg.norm(cube - c) for c in (arm, np.array(TARGET_RGB))) >= CUBE_MIN_DISTANCE:
            break
    else:  # cannot happen in practice; stay legible anyway
        cube = 1.0 - floor1
    tilt, azimuth = np.radians(u(0, LIGHT_TILT)), u(0, 2 * np.pi)
    direction = [np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)]
    tint = 1.0 + u(-TINT, TINT, 3)
    tint = tint / tint.mean()
    distractors = []
    for _ in range(int(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1))):
        shape = ("box", "cylinder", "sphere")[rng.integers(3)]
        full = u(*DISTRACTOR_SIZE)
        if rng.uniform() < 0.6:  # beside the workspace
            x, y = u(0.10, 0.40), rng.choice([-1.0, 1.0]) * u(0.18, 0.30)
        else:  # beyond it
            x, y = u(0.36, 0.45), u(-0.28, 0.28)
        half = full / 2
        if shape == "box":
            size = [half, u(0.5, 1.0) * half, u(0.5, 1.0) * half]
        elif shape == "cylinder":  # radius, half height
            size = [half, u(0.5, 1.5) * half, 0.0]
        else:
            size = [half, 0.0, 0.0]
        height = size[2] if shape == "box" else size[1] if shape == "cylinder" else size[0]
        distractors.append({"type": shape, "pos": _r([x, y, height]), "size": _r(size),
                            "yaw": _r(u(0, 180), 1), "rgba": _r([*u(0.05, 0.95, 3), 1.0], 3)})
    return VisualCell(
        seed=int(seed),
        front_offset=_r(u(-FRONT_OFFSET, FRONT_OFFSET, 3)), front_rotation=_r(u(-FRONT_ROTATION, FRONT_ROTATION, 3), 2),
        front_fovy_delta=_r(u(-FRONT_FOVY, FRONT_FOVY), 2),
        wrist_offset=_r(u(-WRIST_OFFSET, WRIST_OFFSET, 3)), wrist_rotation=_r(u(-WRIST_ROTATION, WRIST_ROTATION, 3), 2),
        wrist_fovy_delta=_r(u(-WRIST_FOVY, WRIST_FOVY), 2),
        headlight_ambient=_r(u(*HEADLIGHT_SCALE[0]), 3), headlight_diffuse=_r(u(*HEADLIGHT_SCALE[1]), 3),
        light_diffuse=_r(u(*LIGHT_SCALE, 2), 3), light_direction=_r(direction),
        side_light_pos=_r([u(-0.3, 0.3), rng.choice([-1.0, 1.0]) * u(0.3, 0.6), u(0.3, 0.6)], 3),
        tint=_r(tint, 3), floor_kind=str(kind), floor_rgb1=_r(floor1, 3), floor_rgb2=_r(floor2, 3),
        floor_repeat=_r(u(*FLOOR_REPEAT), 2), skybox_rgb=_r(u(0.1, 0.8, 3), 3), arm_rgb=_r(arm, 3),
        cube_rgba=_r([*cube, 1.0], 3), distractors=tuple(distractors),
        noise_sigma=_r(u(*NOISE_SIGMA), 2), blur_sigma=_r(u(*BLUR_SIGMA), 3), gain=_r(u(*GAIN, 3), 3),
        brightness=_r(u(-BRIGHTNESS, BRIGHTNESS), 2))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Yaw about the camera's y (up), pitch about its x (right), roll about its z (optical axis)."""
    def axis(k, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        i, j = [(1, 2), (2, 0), (0, 1)][k]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    return axis(1, yaw) @ axis(0, pitch) @ axis(2, roll)


def _turn_camera(camera, offset, rotation, fovy_delta) -> None:
    xy = np.asarray(camera.alt.xyaxes, float)
    x, y = xy[:3] / np.linalg.norm(xy[:3]), xy[3:] / np.linalg.norm(xy[3:])
    frame = np.column_stack([x, y, np.cross(x, y)]) @ _rotation(*rotation)
    camera.pos = np.asarray(camera.pos, float) + np.asarray(offset, float)
    camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    camera.alt.xyaxes = [*frame[:, 0], *frame[:, 1]]
    camera.fovy = float(camera.fovy) + fovy_delta


def apply_to_spec(cell: VisualCell | None, spec: "mujoco.MjSpec") -> None:
    """Draw ``spec`` (hilserl_ros.sim.render.prepare_spec already placed its cameras) as
    ``cell`` does, before compile. Only what is drawn changes; None: nothing."""
    if cell is None:
        return
    _turn_camera(spec.camera("front"), cell.front_offset, cell.front_rotation, cell.front_fovy_delta)
    _turn_camera(spec.camera("wrist"), cell.wrist_offset, cell.wrist_rotation, cell.wrist_fovy_delta)
    tint = np.asarray(cell.tint, float)
    head = spec.visual.headlight
    head.ambient = np.clip(np.asarray(head.ambient, float) * cell.headlight_ambient * tint, 0, 1)
    head.diffuse = np.clip(np.asarray(head.diffuse, float) * cell.headlight_diffuse * tint, 0, 1)
    lights = list(spec.lights)
    for light, scale in zip(lights, cell.light_diffuse):
        light.diffuse = np.clip(np.asarray(light.diffuse, float) * scale * tint, 0, 1)
    if lights:
        lights[0].dir = list(cell.light_direction)
    if len(lights) > 1:
        lights[1].pos = list(cell.side_light_pos)
    floor = spec.texture("grid")
    floor.rgb1, floor.rgb2 = list(cell.floor_rgb1), list(cell.floor_rgb2)
    floor.mark, floor.random = mujoco.mjtMark.mjMARK_NONE, 0.01
    if cell.floor_kind == "flat":
        floor.builtin, floor.rgb2 = mujoco.mjtBuiltin.mjBUILTIN_FLAT, list(cell.floor_rgb1)
    elif cell.floor_kind == "checker":
        floor.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    elif cell.floor_kind == "gradient":
        floor.builtin = mujoco.mjtBuiltin.mjBUILTIN_GRADIENT
    else:  # noise: a flat colour speckled with the second one
        floor.builtin, floor.mark = mujoco.mjtBuiltin.mjBUILTIN_FLAT, mujoco.mjtMark.mjMARK_RANDOM
        floor.markrgb, floor.random = list(cell.floor_rgb2), 0.3
    spec.material("grid").texrepeat = [cell.floor_repeat, cell.floor_repeat]
    for texture in spec.textures:
        if texture.type == mujoco.mjtTexture.mjTEXTURE_SKYBOX:
            texture.rgb1 = list(cell.skybox_rgb)
    for material in spec.materials:
        if material.name != "grid" and material.name not in ARM_SERVO_MATERIALS and material.name.endswith("_material"):
            material.rgba = [*cell.arm_rgb, 1.0]
    spec.geom("block").rgba = list(cell.cube_rgba)
    types = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
             "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}
    for i, d in enumerate(cell.distractors):
        yaw = np.radians(d["yaw"]) / 2
        body = spec.worldbody.add_body(name=f"distractor_{i}", pos=list(d["pos"]),
                                       quat=[np.cos(yaw), 0.0, 0.0, np.sin(yaw)])
        body.add_geom(type=types[d["type"]], size=list(d["size"]), rgba=list(d["rgba"]), contype=0, conaffinity=0,
                      group=0, mass=0.0)


def apply_effects(cell: VisualCell | None, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The cell's camera sensor on one uint8 RGB frame [H, W, 3]: blur (optics), white balance
    and exposure, then noise drawn from ``rng`` (new every frame). None: the frame as it is."""
    if cell is None:
        return frame
    import cv2

    out = frame.astype(np.float32)
    if cell.blur_sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=cell.blur_sigma, borderType=cv2.BORDER_REFLECT)
    out = out * np.asarray(cell.gain, np.float32) + np.float32(cell.brightness)
    if cell.noise_sigma > 0:
        out += rng.normal(0.0, cell.noise_sigma, out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class FrameEffects:
    """:func:`apply_effects` with its own generator (seeded from the world's seed)."""

    def __init__(self, cell: VisualCell | None, seed: int = 0):
        self.cell = cell
        self.rng = np.random.default_rng([int(seed), 0xEFFEC7])

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return apply_effects(self.cell, frame, self.rng)


# ---------------------------------------------------------------------- contact sheet
def render_cell(cell: VisualCell | None, seed: int = 0, size: int = 128) -> dict[str, np.ndarray]:
    """Front and wrist frames of ``cell`` in both tasks: pick_cube at its reset (cube in
    view), reach with the arm at a goal (the target marker in view)."""
    from hilserl_ros.kinematics import SO101Kinematics
    from hilserl_ros.sim.world import SO101World

    frames = {}
    for task in ("pick_cube", "reach"):
        world = SO101World(task, seed=seed, render_size=size, cell=cell)
        try:
            q = world.joint_state()[0]
            goal = world.task_state().goal
            point = goal + ([0.0, 0.0, 0.06] if task == "pick_cube" else [0.0, 0.0, 0.04])
            q_goal = SO101Kinematics().solve(point, q, top_down=task == "pick_cube").q
            q_goal[5] = 1.0  # gripper open
            world.show(q_goal, goal, None if task == "reach" else goal)
            for camera in ("front", "wrist"):
                frames[f"{task}/{camera}"] = world.render(camera)
        finally:
            world.close()
    return frames


def contact_sheet(cells: list[VisualCell | None], seed: int = 0, size: int = 128, scale: int = 2) -> np.ndarray:
    """One row per cell (the first labelled 'shipped'), columns pick_cube front / wrist and
    reach front / wrist, each frame as the policy sees it, enlarged ``scale`` times."""
    import cv2

    rows = []
    for cell in cells:
        frames = render_cell(cell, seed, size)
        tiles = [cv2.resize(f, (size * scale, size * scale), interpolation=cv2.INTER_NEAREST) for f in frames.values()]
        row = np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], axis=1)
        label = np.full((22, row.shape[1], 3), 255, np.uint8)
        text = "shipped" if cell is None else f"cell {cell.seed}"
        cv2.putText(label, f"{text}   ({' | '.join(frames)})", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        rows.append(np.concatenate([label, row], axis=0))
    return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Render the shipped cell and seeded visual cells into one PNG.")
    parser.add_argument("--cells", type=int, nargs="*", default=[0, 1, 2, 3], help="cell seeds")
    parser.add_argument("--out", default="/tmp/cells.png")
    parser.add_argument("--seed", type=int, default=0, help="world seed (cube / goal placement, sensor noise)")
    parser.add_argument("--size", type=int, default=128, help="render size (the policy's: 128)")
    parser.add_argument("--scale", type=int, default=2, help="enlargement on the sheet")
    opts = parser.parse_args(argv)
    import cv2

    cells = [SHIPPED] + [sample_cell(s) for s in opts.cells]
    for cell in cells[1:]:
        print(json.dumps(cell.to_dict()))
    sheet = contact_sheet(cells, opts.seed, opts.size, opts.scale)
    cv2.imwrite(opts.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {opts.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
