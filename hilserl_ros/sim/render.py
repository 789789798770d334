"""Fast camera views of the simulated SO-101 on a CPU (software OpenGL), no ROS.

The arm's meshes have 322k faces and the scene asks for 4096 px shadow maps; drawn as they
are, a 128x128 frame costs ~0.23 s here (4.3 frames/s). What it takes to reach the tens of
frames per second an image policy needs, each measured with ``make bench-world``:

- shadows and reflections off (the policy does not need them; the headlight and the scene's
  lights still shade the meshes);
- visual meshes replaced by low-poly copies made at load time by vertex clustering on a 2 mm
  grid (322k -> 23k faces): at 128x128 one pixel covers 2-4 mm of the workspace, so the
  picture is the same to the pixel where it matters; physics keeps the original meshes;
- no multisampling.

Cameras of the policy (MuJoCo cameras look along their -z, +y up):

- ``front``: fixed, in front of and above the workspace, looking back at the arm (the
  scene's own camera, moved so the workspace box fills the frame);
- ``wrist``: on the gripper, behind the jaws, looking along them (a wrist camera on the fixed
  jaw's mount, as on LeRobot SO-101 builds).
"""
from __future__ import annotations

import functools
import os

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
import mujoco  # noqa: E402

CAMERAS = ("front", "wrist")
VISUAL_GROUP = 2  # the model's visual meshes
LOWPOLY_CELL = 0.002  # m, vertex clustering grid
# front: 0.62 m ahead of the base, 0.42 m up, pitched down at the workspace (x 0.13-0.32 m)
FRONT_CAMERA = {"pos": [0.62, 0.0, 0.42], "xyaxes": [0, 1, 0, -0.55, 0, 0.835], "fovy": 42.0}
# wrist: in the gripper body frame (its -z runs along the jaws to their tips, 10 cm out),
# beside the jaws, looking just past their tips so both jaws and what is between them show
WRIST_CAMERA = {"pos": [0.0, 0.045, -0.03], "target": [-0.008, 0.0, -0.13], "up": [0.0, 0.0, 1.0], "fovy": 75.0}


def look_at(pos, target, up) -> list[float]:
    """MuJoCo camera ``xyaxes`` (image right, image up) for a camera at ``pos`` looking at ``target``."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, forward)]


def read_binary_stl(path: str) -> np.ndarray:
    """Triangles of a binary STL file as float64 [n, 3, 3]."""
    with open(path, "rb") as fh:
        data = fh.read()
    count = int.from_bytes(data[80:84], "little")
    record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
    if len(data) < 84 + count * record.itemsize:
        raise ValueError(f"{path}: not a binary STL file ({count} triangles announced, {len(data)} bytes)")
    return np.frombuffer(data, record, count=count, offset=84)["vertices"].astype(np.float64)


def cluster_vertices(triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering decimation: vertices in one ``cell`` grid cube merge into their mean;
    triangles that collapse are dropped. Returns (vertices [m, 3], faces [k, 3])."""
    points = triangles.reshape(-1, 3)
    keys = np.floor(points / cell).astype(np.int64)
    cells, index = np.unique(keys, axis=0, return_inverse=True)
    index = index.reshape(-1)
    sums = np.zeros((len(cells), 3))
    np.add.at(sums, index, points)
    vertices = sums / np.bincount(index, minlength=len(cells))[:, None]
    faces = index.reshape(-1, 3)
    whole = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return vertices, np.unique(faces[whole], axis=0)


@functools.lru_cache(maxsize=None)
def _lowpoly(path: str, cell: float) -> tuple[tuple[float, ...], tuple[int, ...]]:
    vertices, faces = cluster_vertices(read_binary_stl(path), cell)
    return tuple(vertices.astype(np.float32).reshape(-1).tolist()), tuple(faces.reshape(-1).tolist())


def prepare_spec(spec: "mujoco.MjSpec", scene_dir: str, cell: float = LOWPOLY_CELL) -> None:
    """Give the spec low-poly visual meshes and the policy's cameras (before compile)."""
    meshdir = os.path.join(scene_dir, spec.meshdir)
    lowpoly: dict[str, str] = {}
    for mesh in list(spec.meshes):
        if not mesh.file.lower().endswith(".stl"):
            continue
        vertices, faces = _lowpoly(os.path.join(meshdir, mesh.file), cell)
        added = spec.add_mesh(name=f"{mesh.name}_lowpoly", uservert=list(vertices), userface=list(faces),
                              scale=mesh.scale)
        lowpoly[mesh.name] = added.name
    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.group == VISUAL_GROUP and geom.meshname in lowpoly:
            geom.meshname = lowpoly[geom.meshname]
    front = spec.camera("front")
    front.pos, front.fovy = FRONT_CAMERA["pos"], FRONT_CAMERA["fovy"]
    front.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    front.alt.xyaxes = FRONT_CAMERA["xyaxes"]
    wrist = spec.body("gripper").add_camera(name="wrist", pos=WRIST_CAMERA["pos"], fovy=WRIST_CAMERA["fovy"])
    wrist.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    wrist.alt.xyaxes = look_at(WRIST_CAMERA["pos"], WRIST_CAMERA["target"], WRIST_CAMERA["up"])


class CameraRenderer:
    """One OpenGL context drawing the policy's cameras of a model, at ``size`` x ``size``.
    Call from one thread (the context belongs to it)."""

    def __init__(self, model: "mujoco.MjModel", size: int = 128):
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        self.size = size
        self.renderer = mujoco.Renderer(model, size, size)
        self.option = mujoco.MjvOption()
        self.option.geomgroup[:] = 0
        self.option.geomgroup[0] = 1  # primitives: floor, cube, target
        self.option.geomgroup[VISUAL_GROUP] = 1

    def render(self, data: "mujoco.MjData", camera: str, lock=None) -> np.ndarray:
        """uint8 RGB [size, size, 3]; ``lock`` is held only while the scene is copied."""
        if lock is not None:
            with lock:
                self.renderer.update_scene(data, camera=camera, scene_option=self.option)
        else:
            self.renderer.update_scene(data, camera=camera, scene_option=self.option)
        flags = self.renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()
