"""DT-assisted incremental learning (arXiv 2411.18329) and the Gymnasium environment it is trained
in: the scheme runs and its delays follow the compute policy; the environment passes Gymnasium's
checker, PPO learns something a random policy does not; bad actions and policy files are refused
with the field named."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

import cosim
from cosim.cli import main
from dt_scenarios import dt_tiny


def _small(tmp_path, rounds=2, users=4, **control):
    raw = dt_tiny(tmp_path, rounds=rounds, **control)
    raw["devices"][0]["count"] = users
    return raw


def _run(raw):
    return cosim.run(raw, progress=False, plots=False)


def test_the_scheme_runs_and_its_delays_follow_the_compute_policy(tmp_path):
    """One greedy run (3 users, 2 epochs): every step at a base station lasts its FLOPs over its
    share of the station's FLOP/s, and greedy's shares at a station are in proportion to the users'
    expected work — in epoch 2, where nobody retrains, their requests' FLOPs. (The epochs' summed
    delay cannot tell equal from greedy: with fixed shares both give n·W/C of compute.)"""
    r = _run(_small(tmp_path, users=3, compute="greedy"))
    epochs = r.rounds[r.rounds["round"] > 0]
    assert len(epochs) == 2 and (epochs.delay_s > 0).all() and epochs.accuracy.between(0, 1).all()
    assert epochs.retrained.tolist() == [3, 0]   # every model starts drifted: the first large decision retrains all
    steps = r.events[r.events.kind.isin(["infer", "train"])].copy()
    steps["share"] = steps.detail.str.extract(r"share=([0-9.e-]+)")[0].astype(float)
    assert steps.share.between(0, 1).all() and steps.share.notna().all()
    sc = cosim.load(_small(tmp_path))
    flops_per_s = {s.name: sc.profile(s.profile).effective_flops for s in sc.edge}
    elapsed = steps.t_end - steps.t_start
    assert np.allclose(elapsed * steps.share * steps.node.map(flops_per_s), steps.flops, rtol=1e-6)
    second = steps[(steps["round"] == 2)]
    assert (second.kind == "infer").all() and len(second) == 3
    for _bs, at in second.groupby("node"):
        assert np.allclose(at.share / at.share.sum(), at.flops / at.flops.sum(), rtol=1e-6)


def test_drifted_models_retrain_only_when_the_twin_says_so(tmp_path):
    r = _run(_small(tmp_path, rounds=2, retrain="never"))
    assert (r.events.kind == "new_data").sum() == 0 and (r.events.kind == "train").sum() == 0


@pytest.mark.slow
def test_the_environment_passes_gymnasiums_checker(tmp_path):
    from gymnasium.utils.env_checker import check_env

    from cosim.gym import CosimEnv

    env = CosimEnv(_small(tmp_path), controller_knobs=("compute_share", "association", "retrain"))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape == (4, 9)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(-info["delay_s"] * env.reward_scale) and info["delay_s"] > 0 and not truncated
    assert env.reward_scale == pytest.approx(1 / env.reference_delay_s())   # auto: rewards about -1 per epoch


def test_an_action_outside_the_action_space_is_refused_with_its_entry(tmp_path):
    from cosim.gym import CosimEnv

    env = CosimEnv(_small(tmp_path), controller_knobs=("compute_share", "retrain"), reward_scale=1.0)
    env.reset(seed=0)
    action = np.full(env.action_space.shape, 0.5, dtype=np.float32)
    action[3] = 1.5
    with pytest.raises(ValueError, match=r"action\[3\] \(retrain of u1\): 1.5 outside the action space \[0, 1\]"):
        env.step(action)
    with pytest.raises(ValueError, match=r"action: shape \(3,\); allowed: \(8,\)"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="controller_knobs"):
        CosimEnv(_small(tmp_path), controller_knobs=("cut",))


def test_a_policy_file_that_does_not_fit_the_devices_is_refused_at_load_and_exit_2(tmp_path, capsys):
    from stable_baselines3 import PPO

    from cosim.gym import CosimEnv

    three = CosimEnv(_small(tmp_path, users=3))
    path = tmp_path / "three_users.zip"
    PPO("MlpPolicy", three, n_steps=8, batch_size=8, seed=0).save(path)
    raw = _small(tmp_path, users=4, compute="ppo", policy=str(path))
    with pytest.raises(cosim.ScenarioError, match=r"control.policy: .*observes shape \(3, 9\), this scenario's 4 "
                                                  r"devices give \(4, 9\)"):
        cosim.load(raw)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(scenario)]) == 2
    assert "control.policy" in capsys.readouterr().err
    raw["control"]["policy"] = str(tmp_path / "nothing.zip")
    with pytest.raises(cosim.ScenarioError, match="control.policy: .*nothing.zip: no such policy file"):
        cosim.load(raw)
    del raw["control"]["policy"]
    with pytest.raises(cosim.ScenarioError, match="control.policy: compute: ppo needs the policy file"):
        cosim.load(raw)


@pytest.mark.slow
def test_ppo_trained_a_few_hundred_steps_beats_a_random_policy(tmp_path):
    """Seeded: 128 PPO steps on the tiny two-cell world, then 2 episodes each of its deterministic
    policy and of uniform random actions on the same seeds (mean episode reward = −Σ epoch delays /
    the scenario's equal split's mean epoch delay, reward_scale auto)."""
    from stable_baselines3 import PPO

    from cosim.gym import CosimEnv

    env = CosimEnv(_small(tmp_path, rounds=6, users=3, compute="equal"))
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=16, gamma=0.5, seed=0)
    model.learn(total_timesteps=128)

    def mean_reward(act, seeds=(11, 12)):
        totals = []
        for s in seeds:
            obs, _ = env.reset(seed=s)
            done, total = False, 0.0
            while not done:
                obs, reward, done, _, _ = env.step(act(obs))
                total += reward
            totals.append(total)
        return float(np.mean(totals))

    rng = np.random.default_rng(0)
    trained = mean_reward(lambda obs: np.clip(model.predict(obs, deterministic=True)[0], 0, 1))
    random = mean_reward(lambda obs: rng.uniform(0, 1, env.action_space.shape).astype(np.float32))
    print(f"PPO mean episode reward {trained:.4f}, random {random:.4f}")
    assert trained > random


#: The claim's accuracy margin: a scheme keeps accuracy under drift when its mean accuracy over the
#: epochs is at least a baseline's minus this (absolute, on accuracy in [0, 1]).
ACCURACY_MARGIN = 0.02


@pytest.fixture(scope="module")
def dt_claim_numbers(tmp_path_factory):
    """scenarios/dt_incremental.yaml as shipped, its `compare:` list run once (same seed, requests,
    channel draws and mobility in every entry): label -> (mean epoch delay_s, mean accuracy) over
    the 32 epochs, printed."""
    from pathlib import Path

    import pandas as pd

    raw = yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "dt_incremental.yaml").read_text())
    raw["outputs"] = {"dir": str(tmp_path_factory.mktemp("dt_claims") / "results"), "progress": False, "plots": []}
    table = cosim.compare(raw, progress=False)
    numbers = {}
    for label, row in table.iterrows():
        rounds = pd.read_csv(Path(row.run_dir) / "rounds.csv")
        epochs = rounds[rounds["round"] > 0]
        numbers[label] = (float(epochs.delay_s.mean()), float(epochs.accuracy.mean()))
        print(f"{label:16s} mean epoch delay {numbers[label][0]:.4f} s   mean accuracy {numbers[label][1]:.4f}")
    return numbers


@pytest.mark.claims
def test_the_two_timescale_drl_scheme_has_the_lowest_long_term_delay_at_kept_accuracy(dt_claim_numbers):
    """arXiv 2411.18329's claim: the two-timescale DRL scheme (`drl`: twin association + retraining
    the drifted models + the shipped PPO compute split) has a lower long-term system delay (the mean
    over the epochs of the users' summed delay) than nearest + equal, nearest + greedy and
    always-retrain, with its mean accuracy at least nearest + equal's and nearest + greedy's −
    ACCURACY_MARGIN (same retraining: same models); never-retrain is faster but loses more than the
    margin to drift. (Against nearest + greedy's delay and always-retrain's accuracy: the next tests.)"""
    numbers = dt_claim_numbers
    delay, accuracy = numbers["drl"]
    for baseline in ("nearest-equal", "always-retrain"):
        assert delay < numbers[baseline][0], (baseline, numbers)
    for baseline in ("nearest-equal", "nearest-greedy"):
        assert accuracy >= numbers[baseline][1] - ACCURACY_MARGIN, (baseline, numbers)
    assert numbers["never-retrain"][1] < accuracy - ACCURACY_MARGIN, numbers


@pytest.mark.claims
@pytest.mark.xfail(strict=True, reason="measured (seed 7, 32 epochs, MiniLM, roofline compute model, common random "
                   "numbers): drl mean epoch delay 0.2216 s against nearest + greedy's 0.2127 s (nearest + equal "
                   "0.2303 s): the shipped PPO split was trained on a tiny model under the FLOPs-only compute model "
                   "(before the roofline default) and learned about the equal split (0.2389 s vs equal 0.2382 s, "
                   "greedy 0.2420 s on its training world then); under the roofline the steps at the T4 stations "
                   "are memory-bound and greedy's shares in proportion to work win; with the FLOPs-only model this "
                   "test passed before the roofline default and common random numbers (drl 0.106 s vs greedy 0.177 s)")
def test_the_drl_schemes_delay_is_below_nearest_greedys(dt_claim_numbers):
    assert dt_claim_numbers["drl"][0] < dt_claim_numbers["nearest-greedy"][0], dt_claim_numbers


@pytest.mark.claims
@pytest.mark.xfail(strict=True, reason="measured (seed 7, 32 epochs, MiniLM): drl mean accuracy 0.6327 against "
                   "always-retrain's 0.6885 (-0.056, beyond the 0.02 margin), at a mean epoch delay of 0.222 s against "
                   "0.334 s: at each large-timescale decision (every 4th epoch) always-retrain retrains all six "
                   "models, drift only those whose domain changed since their last retraining (3 of 6 per decision "
                   "here), so always-retrain trains each model about twice as often, on its current domain")
def test_the_drl_schemes_accuracy_is_within_the_margin_of_always_retraining(dt_claim_numbers):
    assert dt_claim_numbers["drl"][1] >= dt_claim_numbers["always-retrain"][1] - ACCURACY_MARGIN, dt_claim_numbers
