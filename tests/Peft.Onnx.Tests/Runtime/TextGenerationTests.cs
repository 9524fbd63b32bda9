using System.Text.Json;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Runtime;

/// <summary>Text in, text out with the folder's tokenizer (models/tiny-bloom-fin, exported).</summary>
public class TextGenerationTests
{
    private const string Model = "tiny-bloom-fin";

    [Fact]
    public async Task Text_prompt_gives_decoded_text_and_streamed_text_matches()
    {
        var model = ExportedModels.Model(Model);
        var request = GenerationRequest.FromText("The company said", GenerationOptions.Greedy(10));
        var result = model.Generate(request);
        Assert.Equal(model.Encode("The company said"), result.Sequences[0][..model.Encode("The company said").Length]);
        Assert.StartsWith("The company said", result.Text![0]);
        Assert.Equal(result.Text[0], "The company said" + result.NewText![0]);
        Assert.Equal(model.Decode(result.NewTokens[0]), result.NewText[0]);

        var streamed = new List<string>();
        await foreach (var chunk in model.StreamTextAsync(request)) streamed.Add(chunk);
        Assert.True(streamed.Count > 1);
        Assert.Equal(result.NewText[0], string.Concat(streamed));
    }

    [Fact]
    public void Batch_of_text_prompts()
    {
        var model = ExportedModels.Model(Model);
        string[] prompts = ["Net sales", "The board of directors proposed"];
        var batch = model.Generate(GenerationRequest.FromText(prompts, GenerationOptions.Greedy(8)));
        for (int i = 0; i < prompts.Length; i++)
        {
            var alone = model.Generate(GenerationRequest.FromText(prompts[i], GenerationOptions.Greedy(8)));
            Assert.Equal(alone.NewTokens[0], batch.NewTokens[i]);
            Assert.Equal(alone.Text![0], batch.Text![i]);
        }
    }

    [Fact]
    public void Cli_prompt_json()
    {
        var r = CliRunner.Run("generate", "--onnx", ExportedModels.Folder(Model), "--prompt", "Operating profit", "--max-new-tokens", "5", "--device", "cpu", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout);
        Assert.StartsWith("Operating profit", json.RootElement.GetProperty("text")[0].GetString());
        Assert.InRange(json.RootElement.GetProperty("new_tokens").GetInt32(), 1, 5);
    }
}
