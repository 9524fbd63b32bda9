using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// Training through the prompt modules against PEFT: first-step gradients of every trainable parameter
/// (embedding, MLP, LSTM, prefix projection) and three plain SGD steps (losses and the saved prompt after them).
/// </summary>
public class PromptLearningTrainingTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases => PromptLearningCases.All.Build();

    [Theory, MemberData(nameof(Cases))]
    public void Gradients_and_sgd_steps_match_peft(string arch, string method)
    {
        using var reference = new Reference(arch);
        using var expected = PromptLearningCases.Expected(arch, method);
        var meta = Reference.Meta(arch, method);
        using var model = PromptLearningCases.CreateFromInit(arch, method);
        model.Base.Training = true;
        using var scope = NewDisposeScope();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        var losses = meta.GetProperty("train_sgd_losses").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        double lr = 0.1;   // manifest settings.sgd.lr

        for (int step = 0; step < losses.Length; step++)
        {
            using var stepScope = NewDisposeScope();
            var result = model.Base is CausalLm
                ? model.Forward(new CausalLmInput(ids, mask, Labels: labels))
                : model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));
            Tolerance.AssertLoss(losses[step], result.Loss!.item<float>(), $"{arch}/{method} loss at step {step}");
            result.Loss!.backward();
            using var noGrad = no_grad();
            foreach (var (name, parameter) in model.Tuner.TrainableParameters)
            {
                var grad = parameter.grad ?? throw new Xunit.Sdk.XunitException($"{name} got no gradient");
                if (step == 0) AssertGrad(expected.ReadFloat32($"train_sgd.grad0.{name}"), PromptLearningCases.Floats(grad), $"{arch}/{method} grad {name}");
                parameter.add_(grad, alpha: -lr);   // torch.optim.SGD: p.add_(grad, alpha=-lr), one fused op
                grad.zero_();
            }
        }
        var state = model.Tuner.AdapterStateDict();
        try
        {
            var want = expected.ReadFloat32("train_sgd.after.prompt_embeddings");
            var got = PromptLearningCases.Floats(state["prompt_embeddings"]);
            var worst = want.Zip(got, (a, b) => Math.Abs(a - b) / Math.Max(1.0, Math.Abs(a))).Max();
            output.WriteLine($"{arch}/{method} prompt after 3 SGD steps: max diff {worst:g3}");
            Assert.True(worst <= 1e-4, $"{arch}/{method} prompt after 3 SGD steps: max diff {worst:g4}");
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    private static void AssertGrad(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs((double)v));
        double worst = expected.Zip(actual, (a, b) => Math.Abs((double)a - b)).Max();
        Assert.True(worst <= 1e-3 * scale + 1e-7, $"{what}: max |diff| {worst:g4} (largest gradient {scale:g4})");
    }
}
