using Peft.Onnx.Trainer.Finetune;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Finetune;

public class ScheduleTests
{
    [Fact]
    public void Linear_schedule_with_warmup_matches_transformers()
    {
        // get_linear_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=10), base lr 1.0:
        // [lr after k scheduler steps for k in 0..11]
        var s = new LinearWarmupSchedule(1.0, 2, 10);
        double[] expected = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0];
        for (int k = 0; k < expected.Length; k++) Assert.Equal(expected[k], s.LearningRate(k), 12);
    }

    [Fact]
    public void Without_warmup_the_first_step_uses_the_full_rate_and_decays_to_zero()
    {
        var s = new LinearWarmupSchedule(5e-3, 0, 510);
        Assert.Equal(5e-3, s.LearningRate(0), 15);
        Assert.Equal(5e-3 * 255 / 510, s.LearningRate(255), 15);
        Assert.Equal(5e-3 / 510, s.LearningRate(509), 15);
        Assert.Equal(0, s.LearningRate(510));
    }

    [Fact]
    public void Steps_per_epoch_count_partial_batches_and_accumulation()
    {
        var o = new FinetuneOptions { BatchSize = 8 };
        Assert.Equal(255, o.BatchesPerEpoch(2037));
        Assert.Equal(255, o.StepsPerEpoch(2037));
        Assert.Equal(128, (o with { GradientAccumulation = 2 }).StepsPerEpoch(2037));
    }

    [Fact]
    public void Seeded_permutations_are_reproducible_and_resumable()
    {
        var a = SeededRandom.FromSeed(42);
        var first = a.Permutation(100);
        var state = a.State;
        var second = a.Permutation(100);
        Assert.Equal(Enumerable.Range(0, 100), first.Order());
        Assert.NotEqual(first, second);
        Assert.Equal(first, SeededRandom.FromSeed(42).Permutation(100));
        Assert.Equal(second, new SeededRandom(state).Permutation(100));
        Assert.NotEqual(first, SeededRandom.FromSeed(43).Permutation(100));
    }

    [Fact]
    public void Clip_grad_norm_scales_by_max_norm_over_total_norm()
    {
        var p1 = tensor(new float[] { 1, 1 }).requires_grad_(true);
        var p2 = tensor(new float[] { 1 }).requires_grad_(true);
        ((p1 * tensor(new float[] { 3, 0 })).sum() + (p2 * tensor(new float[] { 4 })).sum()).backward();
        var total = GradientClipping.ClipGradNorm([p1, p2], 1.0);
        Assert.Equal(5.0, total, 5);
        var coef = 1.0 / (5.0 + 1e-6);
        Assert.Equal(3 * coef, p1.grad!.data<float>()[0], 5);
        Assert.Equal(4 * coef, p2.grad!.data<float>()[0], 5);
        // Below the limit nothing changes.
        Assert.Equal(1.0, GradientClipping.ClipGradNorm([p1, p2], 10.0), 4);
        Assert.Equal(4 * coef, p2.grad!.data<float>()[0], 6);
    }
}
