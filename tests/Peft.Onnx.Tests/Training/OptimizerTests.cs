using Peft.Onnx.Core;
using Peft.Onnx.Trainer.Training;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Training;

/// <summary>
/// SGD and AdamW against steps worked out by hand from torch.optim's update rules (torch 1.13 single-tensor path).
/// A parameter gets gradient g by differentiating sum(p * g), so each case controls its gradients exactly.
/// </summary>
public class OptimizerTests
{
    private static Tensor Param(params float[] values) => tensor(values).requires_grad_(true);

    /// <summary>Sets p.grad = g (via backward of sum(p * g)) after clearing the old one.</summary>
    private static void Backward(Optimizer optimizer, params float[][] grads)
    {
        optimizer.ZeroGrad();
        using var scope = NewDisposeScope();
        Tensor? loss = null;
        for (int i = 0; i < grads.Length; i++)
        {
            var term = (optimizer.Parameters[i].Parameter * tensor(grads[i])).sum();
            loss = loss is null ? term : loss + term;
        }
        loss!.backward();
    }

    private static void AssertValues(double[] expected, Tensor actual, double tol = 2e-7)
    {
        var got = actual.detach().data<float>().ToArray();
        Assert.Equal(expected.Length, got.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - got[i]) <= tol * Math.Max(1, Math.Abs(expected[i])), $"[{i}]: expected {expected[i]}, got {got[i]}");
    }

    [Fact]
    public void Sgd_is_plain_gradient_descent_by_default()
    {
        using var p = Param(1f, -2f);
        using var sgd = new Sgd([("w", p)], new SgdOptions(0.1));
        Backward(sgd, [0.5f, -1f]);
        sgd.Step();
        AssertValues([0.95, -1.9], p); // p - lr * g
        Backward(sgd, [0.5f, -1f]);
        sgd.Step();
        AssertValues([0.90, -1.8], p);
        Assert.Empty(sgd.StateDict()); // no momentum, no state
    }

    [Fact]
    public void Sgd_weight_decay_and_momentum_follow_torch()
    {
        // weight decay: g' = g + wd * p = [0.5 + 0.1, -1 - 0.2]; p = [1 - 0.06, -2 + 0.12]
        using var p = Param(1f, -2f);
        using var decayed = new Sgd([("w", p)], new SgdOptions(0.1, WeightDecay: 0.1));
        Backward(decayed, [0.5f, -1f]);
        decayed.Step();
        AssertValues([0.94, -1.88], p);

        // momentum 0.9: buf1 = g1 -> p1 = p0 - lr g1; buf2 = 0.9 g1 + g2 -> p2 = p1 - lr buf2
        using var q = Param(1f);
        using var momentum = new Sgd([("q", q)], new SgdOptions(0.1, Momentum: 0.9));
        Backward(momentum, [1f]);
        momentum.Step();
        AssertValues([0.9], q);
        Backward(momentum, [2f]);
        momentum.Step();
        AssertValues([0.9 - 0.1 * (0.9 + 2)], q);
        var state = momentum.StateDict();
        AssertValues([2.9], state["q.momentum_buffer"]);
        foreach (var t in state.Values) t.Dispose();
    }

    [Fact]
    public void AdamW_first_step_moves_each_parameter_by_lr_times_sign_of_gradient_after_decay()
    {
        // Step 1: m = (1-b1) g, v = (1-b2) g^2, so m / (1-b1) / (sqrt(v / (1-b2)) + eps) = g / (|g| + eps) ~ sign(g);
        // decoupled decay first: p *= 1 - lr * wd. A zero gradient moves nothing but the decay.
        using var p = Param(1f, -2f, 0.5f);
        using var adamw = new AdamW([("w", p)], new AdamWOptions(Lr: 0.1));
        Assert.Equal((0.9, 0.999, 1e-8, 0.01), (adamw.Options.Beta1, adamw.Options.Beta2, adamw.Options.Eps, adamw.Options.WeightDecay));
        Backward(adamw, [0.5f, -0.1f, 0f]);
        adamw.Step();
        AssertValues([1 * 0.999 - 0.1, -2 * 0.999 + 0.1, 0.5 * 0.999], p);

        // Step 2 with g2 = [0.5, 0.3, 0]: m = [0.095, 0.021, 0], v = [0.00049975, 0.00009999, 0],
        // bc1 = 0.19, bc2 = 0.001999: p = 0.999 p - (0.1 / 0.19) * m / (sqrt(v / bc2) + eps).
        Backward(adamw, [0.5f, 0.3f, 0f]);
        adamw.Step();
        AssertValues([0.7981010039980005, -1.9455209911100655, 0.4990005], p);

        var s = adamw.States["w"];
        Assert.Equal(2, s.Step);
        AssertValues([0.095, 0.021, 0], s.ExpAvg);
        AssertValues([0.00049975, 0.00009999, 0], s.ExpAvgSq, 1e-6);
    }

    [Fact]
    public void AdamW_honours_betas_eps_and_zero_decay()
    {
        // lr 0.01, betas (0.8, 0.99), eps 1e-3, no decay: step 1 = p - lr * g / (|g| + eps).
        using var p = Param(1f, -2f, 0.5f);
        using var adamw = new AdamW([("w", p)], new AdamWOptions(0.01, 0.8, 0.99, 1e-3, 0));
        Backward(adamw, [0.5f, -0.1f, 0f]);
        adamw.Step();
        AssertValues([0.9900199600798403, -1.99009900990099, 0.5], p);
        Backward(adamw, [0.5f, 0.3f, 0f]);
        adamw.Step();
        AssertValues([0.9800399201596806, -1.9955297616508487, 0.5], p);
    }

    [Fact]
    public void AdamW_state_round_trips_through_state_dict()
    {
        using var a = Param(1f, -2f);
        using var b = Param(1f, -2f);
        using var first = new AdamW([("w", a)], new AdamWOptions(0.05));
        Backward(first, [0.3f, -0.7f]);
        first.Step();
        using (no_grad()) b.copy_(a);

        var state = first.StateDict();
        Assert.Equal(["w.exp_avg", "w.exp_avg_sq", "w.step"], state.Keys.Order(StringComparer.Ordinal));
        using var second = new AdamW([("w", b)], new AdamWOptions(0.05));
        second.LoadStateDict(state);
        foreach (var t in state.Values) t.Dispose();
        Assert.Equal(1, second.States["w"].Step);

        Backward(first, [0.2f, 0.4f]);
        first.Step();
        Backward(second, [0.2f, 0.4f]);
        second.Step();
        AssertValues(a.detach().data<float>().ToArray().Select(v => (double)v).ToArray(), b, 0);
    }

    [Fact]
    public void Parameters_without_gradients_are_left_alone()
    {
        using var p = Param(1f);
        using var idle = Param(3f);
        using var adamw = new AdamW([("p", p), ("idle", idle)], new AdamWOptions(0.1));
        adamw.ZeroGrad();
        using (var scope = NewDisposeScope()) (p * 2f).sum().backward();
        adamw.Step();
        AssertValues([3], idle);        // no grad: no decay, no state
        Assert.False(adamw.States.ContainsKey("idle"));
        AssertValues([1 * 0.999 - 0.1], p);
    }

    [Fact]
    public void Invalid_settings_are_one_line_errors()
    {
        using var p = Param(1f);
        Assert.Throws<PeftOnnxException>(() => new AdamW([("w", p)], new AdamWOptions(0.1, Beta1: 1.0)));
        Assert.Throws<PeftOnnxException>(() => new Sgd([("w", p)], new SgdOptions(-1)));
        using var frozen = tensor(new[] { 1f });
        Assert.Throws<PeftOnnxException>(() => new Sgd([("w", frozen)], new SgdOptions(0.1)));
        Assert.Throws<PeftOnnxException>(() => new OptimizerSettings("sgd", 0.1, Beta1: 0.9, Beta2: 0.99).Validate());
        Assert.Throws<PeftOnnxException>(() => new OptimizerSettings("adam", 0.1).Validate());
    }

    [Fact]
    public void One_batch_steps_record_the_loss_before_each_step_and_first_gradients()
    {
        // L(w) = sum(w^2), w0 = [1, 2]: L0 = 5, grad 2 w0 = [2, 4]; SGD lr 0.1 scales w by 0.8 per step.
        using var w = Param(1f, 2f);
        using var sgd = new Sgd([("w", w)], new SgdOptions(0.1));
        var result = OneBatchSteps.Run(() => (w * w).sum(), sgd, 3);
        Assert.Equal(3, result.Losses.Count);
        AssertValues([5, 3.2, 2.048], tensor(result.Losses.ToArray()), 1e-6);
        var g = result.FirstStepGradients["w"];
        Assert.Equal([2L], g.Shape);
        AssertValues([2, 4], tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(g.Bytes.Span).ToArray()));
        AssertValues([0.512, 1.024], w, 1e-6);
        Assert.True(w.grad is null || w.grad.abs().sum().item<float>() == 0); // zeroed after the last step
        Assert.Throws<PeftOnnxException>(() => OneBatchSteps.Run(() => (w * w).sum(), sgd, 0));
    }
}
