using Peft.Onnx.Core;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>Bad input gives a one-line PeftOnnxException that says what is wrong.</summary>
public class RuntimeErrorTests
{
    private static void OneLine(PeftOnnxException ex) => Assert.DoesNotContain('\n', ex.Message);

    [Fact]
    public void Missing_folder()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxModel.Load("/nonexistent/peft-onnx-model", DeviceOptions.Cpu));
        Assert.Contains("folder not found", ex.Message);
        OneLine(ex);
    }

    [Fact]
    public void Missing_graph_file()
    {
        var dir = ExportedModels.Copy("bloom");
        try
        {
            File.Delete(Path.Combine(dir, "model.onnx"));
            var ex = Assert.Throws<PeftOnnxException>(() => OnnxModel.Load(dir, DeviceOptions.Cpu));
            Assert.Contains("model.onnx", ex.Message);
            OneLine(ex);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Missing_decoder_of_an_encoder_decoder()
    {
        var dir = ExportedModels.Copy("t5");
        try
        {
            File.Delete(Path.Combine(dir, "decoder_model.onnx"));
            var ex = Assert.Throws<PeftOnnxException>(() => OnnxModel.Load(dir, DeviceOptions.Cpu));
            Assert.Contains("decoder_model.onnx not found", ex.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("gpt2", 1000)]
    [InlineData("t5", -1)]
    public void Input_id_outside_the_vocabulary(string arch, int id)
    {
        var model = ExportedModels.Model(arch);
        var ex = Assert.Throws<PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds([5, id, 7])));
        Assert.Contains($"token id {id} is outside the vocabulary (0..{model.VocabSize - 1})", ex.Message);
        OneLine(ex);
    }

    [Theory]
    [InlineData("gpt2", "n_positions")]
    [InlineData("llama", "max_position_embeddings")]
    [InlineData("opt", "max_position_embeddings")]
    public void Prompt_longer_than_the_context(string arch, string key)
    {
        var model = ExportedModels.Model(arch);
        int context = model.ContextLength!.Value;
        var ex = Assert.Throws<PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds(Enumerable.Repeat(5, context + 1).ToArray())));
        Assert.Contains(key, ex.Message);
        Assert.Contains($"{context + 1} tokens", ex.Message);
        OneLine(ex);
    }

    [Fact]
    public void Generation_stops_at_the_end_of_the_context()
    {
        var model = ExportedModels.Model("gpt2");
        int context = model.ContextLength!.Value;
        var result = model.Generate(GenerationRequest.FromIds(Enumerable.Repeat(5, context - 2).ToArray(), GenerationOptions.Greedy(10) with { StopTokenIds = [] }));
        Assert.Equal(context, result.Sequences[0].Length);
    }

    [FactWhereCudaCannotStart]
    public void Cuda_where_it_cannot_start_names_what_is_missing()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxModel.Load(ExportedModels.Folder("bloom"), DeviceOptions.Cuda));
        Assert.StartsWith("cuda: ", ex.Message);
        Assert.Matches(@"lib\w+\.so\.\d+", ex.Message);
        OneLine(ex);
    }

    // On a CUDA host the device check (scripts/device) compares the CUDA forward's logits with the CPU's instead.
    [FactWhereCudaCannotStart]
    public void Forward_onnx_on_cuda_where_it_cannot_start_says_so_in_one_line()
    {
        var ex = Assert.Throws<PeftOnnxException>(() => LogitsForward.Open(ExportedModels.Folder("bloom"), ForwardSessionKind.Cuda));
        Assert.StartsWith("cuda: the CUDA execution provider cannot start: ", ex.Message);
        OneLine(ex);
    }

    [Fact]
    public void Auto_reports_its_choice()
    {
        var report = new StringWriter();
        using var model = OnnxModel.Load(ExportedModels.Folder("bloom"), DeviceOptions.Auto with { Report = report });
        Assert.Contains($"device: auto chose {model.DeviceName}", report.ToString());
    }

    [Fact]
    public void Bad_options()
    {
        var model = ExportedModels.Model("bloom");
        Assert.Throws<PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds([5], new GenerationOptions { TopP = 0 })));
        Assert.Throws<PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds([5], new GenerationOptions { Temperature = -1 })));
        Assert.Throws<PeftOnnxException>(() => model.Generate(GenerationRequest.FromIds(Array.Empty<int>())));
    }
}
