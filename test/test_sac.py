"""The SAC core: learning, the field report's alpha mechanism, live knobs, grasp critic,
safetensors weights and checkpoints."""
import math
import multiprocessing

import numpy as np
import pytest
import torch

from hilserl_ros.learning import checkpoint
from hilserl_ros.learning.buffers import ReplayBuffer, sample_mixed
from hilserl_ros.learning.config import SACConfig
from hilserl_ros.learning.networks import GraspCritic
from hilserl_ros.learning.sac import STAT_KEYS, Policy, SACAgent

torch.set_num_threads(2)
SMALL = dict(hidden_dims=(64, 64), batch_size=64)


def filled_buffer(obs_dim, action_dim, n=2000, reward=None, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(n, obs_dim, action_dim, seed=seed)
    for _ in range(n):
        a = rng.uniform(-1, 1, action_dim)
        r = reward(a) if reward else float(rng.normal())
        buf.add(rng.normal(size=obs_dim), a, r, rng.normal(size=obs_dim), bool(rng.random() < 0.05))
    return buf


# ----------------------------------------------------------------------------- defaults
def test_target_entropy_defaults_to_minus_half_the_action_dim():
    assert SACConfig(obs_dim=20, action_dim=4).target_entropy == -2.0  # the field report's fix
    assert SACConfig(obs_dim=3, action_dim=1).target_entropy == -0.5
    cfg = SACConfig(obs_dim=3, action_dim=4)
    assert (cfg.temperature_init, cfg.discount, cfg.tau, cfg.utd_ratio, cfg.num_critics) == (1e-2, 0.97, 0.005, 2, 2)


def test_every_statistic_is_reported_and_finite():
    agent = SACAgent(SACConfig(obs_dim=5, action_dim=4, grasp_critic=True, **SMALL))
    stats = agent.update(filled_buffer(5, 4).sample)
    assert set(stats) == set(STAT_KEYS)
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert 0.0 <= stats["action_abs_mean"] <= 1.0


# ----------------------------------------------------------------------------- learns
def _pendulum(seed):
    from hilserl_ros.learning.gym_train import PENDULUM, train_gym

    result = train_gym("Pendulum-v1", 15000, seed=seed, goal_return=-400.0, **PENDULUM)
    return seed, result.reached_at, result.last_mean(), result.seconds


@pytest.mark.slow
def test_learns_pendulum_on_at_least_two_of_three_seeds():
    """Mean return above -400 over the last 10 episodes within 15,000 steps (state obs, CPU)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:  # two seeds at a time on the two cores
        results = pool.map(_pendulum, [0, 1])
        if sum(r[1] is not None for r in results) < 2:
            results += pool.map(_pendulum, [2])
    for seed, reached, last, seconds in results:
        print(f"Pendulum seed {seed}: reached={reached} last10={last:.0f} ({seconds:.0f} s)")
    assert sum(r[1] is not None for r in results) >= 2, results


# ----------------------------------------------------------------------------- alpha
def _alpha_run(target_entropy, updates=600, then=None):
    """Toy task whose reward pulls actions to zero (r = -|a|^2): alpha decides how far."""
    cfg = SACConfig(obs_dim=4, action_dim=4, target_entropy=target_entropy, temperature_init=0.1,
                    hidden_dims=(64, 64), batch_size=128, utd_ratio=1, discount=0.0,
                    actor_lr=1e-3, critic_lr=1e-3, temperature_lr=1e-2)
    agent = SACAgent(cfg)
    buf = filled_buffer(4, 4, n=5000, reward=lambda a: -float(np.sum(a ** 2)))
    for _ in range(updates):
        stats = agent.update(buf.sample)
    if then is not None:
        agent.set_target_entropy(then)
        for _ in range(200):
            stats = agent.update(buf.sample)
    return stats


def test_field_report_mechanism_target_entropy_decides_alpha_and_action_size():
    low = _alpha_run(-4.0)   # -action_dim: what the field report ran with
    high = _alpha_run(-2.0)  # -action_dim/2: the HIL-SERL default
    assert low["alpha"] < 0.6 * high["alpha"], (low["alpha"], high["alpha"])
    assert low["action_abs_mean"] < high["action_abs_mean"]
    assert low["entropy"] < high["entropy"]


def test_changing_target_entropy_mid_run_moves_alpha():
    kept = _alpha_run(-4.0, updates=800)
    raised = _alpha_run(-4.0, updates=600, then=-2.0)  # same number of updates, target raised
    assert raised["target_entropy"] == -2.0
    assert raised["alpha"] > 1.5 * kept["alpha"], (raised["alpha"], kept["alpha"])
    lowered = _alpha_run(-2.0, updates=600, then=-4.0)
    assert lowered["alpha"] < _alpha_run(-2.0, updates=800)["alpha"]


# ----------------------------------------------------------------------------- knobs
def test_knobs_take_effect_at_the_next_update():
    agent = SACAgent(SACConfig(obs_dim=3, action_dim=2, **SMALL))
    buf = filled_buffer(3, 2)
    sizes = []

    def sample(n):
        sizes.append(n)
        return buf.sample(n)

    agent.update(sample)
    assert sizes == [64, 64]  # UTD 2: two critic batches
    sizes.clear()
    agent.set_utd_ratio(3)
    agent.set_batch_size(32)
    agent.set_target_entropy(-0.25)
    agent.set_learning_rate("actor", 1e-4)
    agent.set_discount(0.9)
    stats = agent.update(sample)
    assert sizes == [32, 32, 32]
    assert stats["target_entropy"] == -0.25
    assert agent.actor_opt.param_groups[0]["lr"] == 1e-4 and agent.config.discount == 0.9
    agent.set_temperature(0.5)
    assert agent.alpha == pytest.approx(0.5)
    assert not agent.temperature_opt.state  # moments reset with alpha


@pytest.mark.parametrize("setter, value, why", [
    ("set_target_entropy", float("nan"), "finite"),
    ("set_target_entropy", "-2", "number"),
    ("set_temperature", 0.0, "temperature"),
    ("set_temperature", float("inf"), "finite"),
    ("set_utd_ratio", 0, "utd_ratio"),
    ("set_utd_ratio", 2.5, "integer"),
    ("set_batch_size", -8, "batch_size"),
    ("set_discount", 1.5, "discount"),
    ("set_tau", 0.0, "tau"),
])
def test_bad_knob_values_raise_and_change_nothing(setter, value, why):
    agent = SACAgent(SACConfig(obs_dim=3, action_dim=2, **SMALL))
    before = (agent.config.to_dict(), agent.alpha)
    with pytest.raises(ValueError, match=why):
        getattr(agent, setter)(value)
    assert (agent.config.to_dict(), agent.alpha) == before


def test_bad_learning_rate_is_refused():
    agent = SACAgent(SACConfig(obs_dim=3, action_dim=2, **SMALL))
    with pytest.raises(ValueError, match="critic_lr"):
        agent.set_learning_rate("critic", -1e-3)
    with pytest.raises(ValueError, match="learning rate must be one of"):
        agent.set_learning_rate("policy", 1e-3)
    assert agent.critic_opt.param_groups[0]["lr"] == 3e-4


# ----------------------------------------------------------------------------- grasp critic
def test_grasp_critic_learns_the_rewarded_gripper_action_and_can_be_switched_off():
    cfg = SACConfig(obs_dim=3, action_dim=3, grasp_critic=True, discount=0.0, critic_lr=1e-3, **SMALL)
    agent = SACAgent(cfg)
    buf = filled_buffer(3, 3, n=3000, reward=lambda a: 1.0 if a[-1] > 0.5 else 0.0)  # "open" pays
    for _ in range(300):
        agent.update(buf.sample)
    obs = np.zeros(3, np.float32)
    q = agent.grasp(torch.zeros(1, 3))[0]
    assert int(q.argmax()) == GraspCritic.OPEN
    assert agent.act(obs, deterministic=True)[-1] == 1.0
    # the penalty: an action that changes the gripper is worth grasp_penalty less than "stay"
    assert float(q[GraspCritic.STAY]) < float(q[GraspCritic.OPEN])
    off = SACAgent(SACConfig(obs_dim=3, action_dim=3, grasp_critic=False, **SMALL))
    assert off.grasp is None and off.actor.mean.out_features == 3
    assert agent.actor.mean.out_features == 2


def test_grasp_penalty_lowers_the_value_of_changing_the_gripper():
    cfg = SACConfig(obs_dim=3, action_dim=3, grasp_critic=True, discount=0.0, critic_lr=1e-3,
                    grasp_penalty=-0.5, **SMALL)
    agent = SACAgent(cfg)
    buf = filled_buffer(3, 3, n=3000, reward=lambda a: 0.0)
    for _ in range(300):
        agent.update(buf.sample)
    q = agent.grasp(torch.zeros(1, 3))[0]
    assert float(q[GraspCritic.STAY]) > float(q[GraspCritic.OPEN]) + 0.3
    assert float(q[GraspCritic.STAY]) > float(q[GraspCritic.CLOSE]) + 0.3


def test_grasp_critic_action_mapping_and_double_dqn_target():
    # continuous gripper command -> discrete action, and back
    commands = torch.tensor([-1.0, -0.6, -0.4, 0.0, 0.4, 0.6, 1.0])
    index = GraspCritic.discretise(commands)
    assert index.tolist() == [GraspCritic.CLOSE] * 2 + [GraspCritic.STAY] * 3 + [GraspCritic.OPEN] * 2
    assert GraspCritic.to_command(index).tolist() == [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    # the target: r + penalty (not for stay) + discount * Q_target(s', argmax_g Q_online(s', g))
    from hilserl_ros.learning.buffers import Batch

    cfg = SACConfig(obs_dim=3, action_dim=4, grasp_critic=True, discount=0.9, grasp_penalty=-0.25, **SMALL)
    agent = SACAgent(cfg)
    with torch.no_grad():  # a target network unlike the online one, so the double-DQN choice shows
        for p in agent.grasp_target.parameters():
            p.add_(0.3 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(0)
    obs, next_obs = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    action = torch.zeros(5, 4)
    action[:, 3] = torch.tensor([-1.0, 0.0, 1.0, 0.0, -1.0])
    reward, terminated = torch.tensor([0.0, 1.0, 0.5, -0.2, 0.3]), torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    batch = Batch(obs, action, reward, next_obs, terminated, torch.zeros(5, dtype=torch.bool), {}, {})
    with torch.no_grad():
        best = agent.grasp(next_obs).argmax(-1)
        q_next = agent.grasp_target(next_obs)[torch.arange(5), best]
        penalty = torch.tensor([-0.25, 0.0, -0.25, 0.0, -0.25])
        target = reward + penalty + 0.9 * (1 - terminated) * q_next
        q = agent.grasp(obs)[torch.arange(5), torch.tensor([0, 1, 2, 1, 0])]
        expected = 0.5 * ((q - target) ** 2).mean()
    loss = agent._grasp_step(batch, obs, next_obs, 1 - terminated)
    assert loss == pytest.approx(float(expected), rel=1e-5)
    # and the actor's action: the continuous part from the actor, the gripper from the critic's argmax
    act = agent.act(np.zeros(3, np.float32), deterministic=True)
    expect_g = GraspCritic.VALUES[int(agent.grasp(torch.zeros(1, 3)).argmax())]
    assert act.shape == (4,) and act[3] == expect_g and np.all(np.abs(act[:3]) < 1)


# ----------------------------------------------------------------------------- weights and checkpoints
def test_policy_weights_round_trip_as_safetensors_bytes():
    agent = SACAgent(SACConfig(obs_dim=6, action_dim=4, grasp_critic=True, **SMALL))
    agent.update(filled_buffer(6, 4).sample)
    data, meta = agent.policy.to_bytes(version=12)
    assert data[8:9] == b"{"  # safetensors: a JSON header, no pickle stream
    copy = Policy.from_bytes(data)
    obs = np.linspace(-1, 1, 6).astype(np.float32)
    assert np.array_equal(copy.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    with pytest.raises(ValueError):
        Policy.from_bytes(b"\x80\x04not safetensors")
    other = Policy(SACConfig(obs_dim=7, action_dim=4, grasp_critic=True, **SMALL))
    with pytest.raises(ValueError, match="do not fit"):
        other.load_bytes(data)


def test_checkpoint_round_trip_gives_bit_identical_actions_and_updates(tmp_path):
    cfg = SACConfig(obs_dim=5, action_dim=4, grasp_critic=True, seed=3, **SMALL)
    agent = SACAgent(cfg)
    rl, demo = filled_buffer(5, 4, n=500, seed=1), filled_buffer(5, 4, n=300, seed=2)
    for _ in range(20):
        agent.update(lambda n: sample_mixed(rl, demo, n))
    agent.set_target_entropy(-1.0)
    path = checkpoint.save_training_state(str(tmp_path / "ckpt.pt"), agent, {"rl": rl, "demo": demo},
                                          {"env_steps": 1234})

    restored = SACAgent(SACConfig(obs_dim=5, action_dim=4, grasp_critic=True, seed=99, **SMALL))
    rl2, demo2 = ReplayBuffer(500, 5, 4, seed=1), ReplayBuffer(300, 5, 4, seed=2)
    extra = checkpoint.restore_training_state(path, restored, {"rl": rl2, "demo": demo2})
    assert extra == {"env_steps": 1234}
    assert restored.update_step == 20 and restored.config.target_entropy == -1.0
    assert len(rl2) == 500 and np.array_equal(rl2.obs, rl.obs) and np.array_equal(demo2.reward, demo.reward)
    obs = np.ones(5, np.float32)
    assert np.array_equal(restored.act(obs, deterministic=True), agent.act(obs, deterministic=True))
    assert np.array_equal(restored.act(obs), agent.act(obs))  # sampling RNG restored too
    fixed = rl.sample(64)
    assert restored.update(lambda n: fixed) == agent.update(lambda n: fixed)


def test_a_save_interrupted_midway_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    agent = SACAgent(SACConfig(obs_dim=3, action_dim=2, **SMALL))
    path = str(tmp_path / "learner.pt")
    checkpoint.save_training_state(path, agent, extra={"n": 1})

    def torn_save(obj, fh):
        fh.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_training_state(path, agent, extra={"n": 2})
    monkeypatch.undo()
    assert checkpoint.load(path)["extra"] == {"n": 1}
    assert checkpoint.newest_intact(str(tmp_path)) == path


def test_newest_intact_skips_a_damaged_file(tmp_path):
    good = checkpoint.save_atomic({"x": torch.ones(2)}, str(tmp_path / "a.pt"))
    bad = tmp_path / "b.pt"
    bad.write_bytes(b"garbage")
    assert checkpoint.newest_intact(str(tmp_path)) == good


def test_a_checkpoint_that_does_not_fit_is_refused_before_anything_is_loaded(tmp_path):
    """The learner sets such a checkpoint aside and trains afresh: nothing of it may be half-loaded."""
    cfg = SACConfig(obs_dim=5, action_dim=4, seed=3, **SMALL)
    agent = SACAgent(cfg)
    shapes = {"front": (8, 8, 3)}
    rl = ReplayBuffer(40, 5, 4, image_shapes=shapes, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        frames = {"front": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)}
        rl.add(np.zeros(5, np.float32), np.zeros(4, np.float32), 0.0, np.zeros(5, np.float32), False,
               images=frames, next_images=frames)
    for _ in range(3):
        agent.update(lambda n: rl.sample(n))
    path = checkpoint.save_training_state(str(tmp_path / "ckpt.pt"), agent, {"rl": rl})

    fresh = SACAgent(SACConfig(obs_dim=5, action_dim=4, seed=99, **SMALL))
    before = [p.detach().clone() for p in fresh.policy.parameters()]
    small = ReplayBuffer(40, 5, 4, image_shapes=shapes, seed=1, frame_capacity=10)  # the agent fits, this does not
    with pytest.raises(ValueError, match="frames, this buffer holds 10"):
        checkpoint.restore_training_state(path, fresh, {"rl": small})
    assert fresh.update_step == 0 and len(small) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, fresh.policy.parameters()))
