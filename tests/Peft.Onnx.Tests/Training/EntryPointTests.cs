using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Training;
using Xunit;

namespace Peft.Onnx.Tests.Training;

/// <summary>
/// The Trainer's entry points behind `forward --base` (<see cref="TorchForward"/>) and `train --batch`
/// (<see cref="OneBatchJob"/>), called in-process, against PEFT's reference values.
/// </summary>
public class EntryPointTests
{
    private static string Inputs(string arch) => Path.Combine(Paths.Case(arch), "inputs.safetensors");

    [Theory]
    [InlineData(false, "logits", "loss")]
    [InlineData(true, "logits_merged", "loss_merged")]
    public void Torch_forward_with_an_adapter_matches_peft(bool merge, string logitsKey, string lossKey)
    {
        var request = new TorchForwardRequest(Paths.Case("gpt2", "base_model"), Paths.Case("gpt2", Path.Combine("lora", "adapter")), merge, "cpu");
        var log = new StringWriter();
        var result = TorchForward.Run(request, Inputs("gpt2"), log);

        using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case("gpt2", "lora"), "reference.safetensors"));
        using var reference = new Reference("gpt2");
        Assert.Equal(expected[logitsKey].Shape, result.LogitsShape);
        Tolerance.AssertLogits(expected.ReadFloat32(logitsKey), result.Logits, (int)result.LogitsShape[^1],
            Tolerance.RowsFromMask(reference.Inputs.ReadInt64("attention_mask")), $"TorchForward {logitsKey}");
        Tolerance.AssertLoss(expected.ReadFloat32(lossKey)[0], result.Loss!.Value);
        Assert.Equal(merge, log.ToString().Contains("merged the LORA adapter"));
    }

    [Fact]
    public void Torch_forward_refuses_merge_without_an_adapter()
    {
        var request = new TorchForwardRequest(Paths.Case("gpt2", "base_model"), null, Merge: true, "cpu");
        var error = Assert.Throws<PeftOnnxException>(() => TorchForward.Run(request, Inputs("gpt2"), TextWriter.Null));
        Assert.StartsWith("forward: --merge needs --adapter", error.Message);
    }

    [Fact]
    public void One_batch_job_reports_peft_losses_and_saves_the_adapter()
    {
        var dir = Paths.TempDir();
        try
        {
            var outDir = Path.Combine(dir, "trained");
            var report = OneBatchJob.Run(new OneBatchRequest
            {
                BaseDir = Paths.Case("bloom", "base_model"),
                AdapterDir = Paths.Case("bloom", Path.Combine("lora", "adapter")),
                OutDir = outDir,
                BatchPath = Inputs("bloom"),
                Steps = 3,
                Optimizer = new OptimizerSettings("sgd", 0.1),
                Device = "cpu",
            }, TextWriter.Null);

            var expected = Reference.Meta("bloom", "lora").GetProperty("train_sgd_losses").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(expected.Length, report.Losses.Count);
            for (int i = 0; i < expected.Length; i++) Tolerance.AssertLoss(expected[i], report.Losses[i], $"loss before step {i + 1}");
            Assert.Equal("LORA", report.PeftType);
            using var saved = SafeTensorsFile.Open(Path.Combine(outDir, "adapter_model.safetensors"));
            Assert.Equal(saved.Names.Sum(n => saved[n].Shape.Aggregate(1L, (a, b) => a * b)), report.Trainable);
            Assert.NotNull(report.FinalLoss);
            Assert.True(report.FinalLoss < report.Losses[0], $"final loss {report.FinalLoss} is not below the first {report.Losses[0]}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void One_batch_job_needs_exactly_one_of_adapter_and_config()
    {
        var request = new OneBatchRequest
        {
            BaseDir = Paths.Case("bloom", "base_model"), OutDir = "unused", BatchPath = Inputs("bloom"), Steps = 1,
            Optimizer = new OptimizerSettings("sgd", 0.1),
        };
        var error = Assert.Throws<PeftOnnxException>(() => OneBatchJob.Run(request, TextWriter.Null));
        Assert.StartsWith("train: give exactly one of --adapter DIR", error.Message);
    }
}
