"""stateful=True: chunks of a run equal the run, reset, TBPTT, flat memory."""

import subprocess
import sys
import textwrap

import nengo
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close

import keras_nengo as kn
from keras_nengo._compat import nengo_dl


def spiking_network():
    """Spiking LIF, synapses, a recurrent connection, a time-dependent Node."""
    with nengo.Network(seed=4) as net:
        stim = nengo.Node(np.zeros(2), label="stim")
        wave = nengo.Node(lambda t: np.sin(20 * t), label="wave")
        noise = nengo.Node(nengo.processes.WhiteNoise(), size_out=1, label="noise")
        ens = nengo.Ensemble(40, 2, label="ens")
        out = nengo.Node(size_in=2, label="out")
        nengo.Connection(stim, ens, synapse=0.005)
        nengo.Connection(wave, ens[0], synapse=None)
        nengo.Connection(noise, ens[1], synapse=0.01, transform=0.1)
        nengo.Connection(ens, ens, synapse=0.02, transform=0.5)
        nengo.Connection(ens, out, synapse=0.01)
        nengo.Probe(out, label="p_out", synapse=0.01)
    return net


@pytest.fixture(scope="module")
def run():
    """One long run (60 steps, 3 rows), from nengo_dl.Simulator."""
    x = np.random.RandomState(0).uniform(-1, 1, (3, 60, 2)).astype(np.float32)
    net = spiking_network()
    with nengo_dl.Simulator(net, seed=1, minibatch_size=3, progress_bar=False) as sim:
        reference = sim.predict({net.all_nodes[0]: x})[net.all_probes[0]]
    return x, reference


def test_long_run_equals_nengo_dl_and_chunks_equal_the_long_run(run):
    x, reference = run
    assert_close(kn.NengoLayer(spiking_network(), seed=1)({"stim": x}), reference)
    layer = kn.NengoLayer(spiking_network(), seed=1, stateful=True)
    chunks = [layer({"stim": x[:, i : i + 20]}) for i in range(0, 60, 20)]
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), reference, atol=1e-5)
    layer.reset_states()
    np.testing.assert_allclose(layer({"stim": x[:, :30]}), reference[:, :30], atol=1e-5)


def test_model_predict_and_evaluate_carry_state(run):
    x, reference = run
    model = kn.NengoModel(spiking_network(), seed=1, stateful=True)
    model.compile(loss="mse")
    pieces = [
        model.predict({"stim": x[:, i : i + 15]}, batch_size=3, verbose=0)
        for i in range(0, 45, 15)
    ]
    np.testing.assert_allclose(np.concatenate(pieces, 1), reference[:, :45], atol=1e-5)
    # evaluate runs on from step 45, so its loss against zeros is the last chunk's
    loss = model.evaluate({"stim": x[:, 45:]}, np.zeros((3, 15, 2)), verbose=0)
    np.testing.assert_allclose(loss, np.mean(reference[:, 45:] ** 2), rtol=1e-4)
    model.reset_states()
    again = model.predict({"stim": x[:, :15]}, batch_size=3, verbose=0)
    np.testing.assert_allclose(again, reference[:, :15], atol=1e-5)


def test_batch_size_is_fixed_by_the_first_call(run):
    x, _ = run
    layer = kn.NengoLayer(spiking_network(), seed=1, stateful=True)
    layer({"stim": x[:, :5]})
    with pytest.raises(ValueError, match=r"fixed to 3 by its first call.*batch of 2"):
        layer({"stim": x[:2, :5]})
    model = kn.NengoModel(spiking_network(), seed=1, stateful=True)
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((3, 5, 2))
    with pytest.raises(ValueError, match=r"3 samples in batches of 2"):
        model.fit({"stim": x[:, :5]}, y, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match=r"shuffle=True.*shuffle=False"):
        model.fit({"stim": x[:, :5]}, y, batch_size=3, shuffle=True, verbose=0)
    unrolled = kn.NengoLayer(spiking_network(), stateful=True, unroll_simulation=4)
    with pytest.raises(ValueError, match=r"multiple of that many steps.*n_steps=5"):
        unrolled({"stim": x[:, :5]})


def rate_network():
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(np.zeros(1), label="stim")
        ens = nengo.Ensemble(30, 1, label="ens", neuron_type=nengo.LIFRate())
        out = nengo.Node(size_in=1, label="out")
        nengo.Connection(stim, ens, synapse=0.01)
        nengo.Connection(ens, ens, synapse=0.05, transform=0.8)
        nengo.Connection(ens, out, synapse=0.01)
        nengo.Probe(out, label="p")
    return net


def test_fit_is_truncated_bptt_over_consecutive_batches():
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, (2, 30, 1)).astype(np.float32)
    y = np.sin(3 * x)
    # batch k holds time chunk k of both sequences: row i continues row i

    def chunks(a):
        return np.concatenate([a[:, i : i + 10] for i in (0, 10, 20)], 0)

    model = kn.NengoModel(rate_network(), seed=0, stateful=True)
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-6), loss="mse")
    model.fit(chunks(x), chunks(y), batch_size=2, epochs=1, verbose=0)

    # hand-written: carry the final state as a constant into the next chunk
    reference = kn.NengoLayer(rate_network(), seed=0)
    reference.build(None)
    simulation, variables = reference.simulation, reference.named_variables
    node, probe = reference.input_nodes[0], reference.output_probes[0]
    trainable = [v for v in variables.values() if v.trainable]
    state = None
    for i in (0, 10, 20):
        with tf.GradientTape() as tape:
            outputs, final = simulation.run(
                variables, {node: tf.constant(x[:, i : i + 10])}, 2, 10, True, state
            )
            out = outputs[simulation.probe_index[probe]]
            loss = tf.reduce_mean(tf.square(out - y[:, i : i + 10]))
        for variable, grad in zip(trainable, tape.gradient(loss, trainable)):
            variable.assign_sub(1e-6 * grad)
        state = {key: tf.constant(value.numpy()) for key, value in final.items()}
    for name, value in model.get_named_weights().items():
        assert_close(value, variables[name].numpy(), "weights32")
    untrained = kn.NengoModel(rate_network(), seed=0).get_named_weights()
    assert any(
        not np.array_equal(value, untrained[name])
        for name, value in model.get_named_weights().items()
    )


@pytest.mark.slow
def test_memory_of_a_chunked_run_is_flat():
    code = """
        import resource, json
        import keras_nengo as kn
        import nengo, numpy as np
        with nengo.Network(seed=0) as net:
            stim = nengo.Node(np.zeros(4))
            ens = nengo.Ensemble(200, 4)
            nengo.Connection(stim, ens, synapse=0.01)
            nengo.Connection(ens, ens, synapse=0.05, transform=0.5)
            nengo.Probe(ens, synapse=0.02)
        layer = kn.NengoLayer(net, seed=0, stateful=True)
        x = np.random.RandomState(0).uniform(-1, 1, (4, 2000, 4)).astype(np.float32)
        rss = []
        for chunk in range(20):  # 40,000 steps
            layer(x)
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(rss))
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rss = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    # the first chunks trace and warm up; afterwards peak RSS must not grow
    assert rss[-1] - rss[4] < 25, rss
