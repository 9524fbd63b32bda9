using System.Text.Json.Nodes;
using Peft.Onnx.Bench;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>The folder bench hands ORT GenAI to run it at our thread count: the export's files linked, one config amended.</summary>
public class GenAiThreadsTests
{
    [Fact]
    public void Folder_links_the_export_and_sets_the_decoder_threads_keeping_the_rest_of_the_config()
    {
        var dir = Paths.TempDir();
        try
        {
            var export = Path.Combine(dir, "int8");
            Directory.CreateDirectory(export);
            File.WriteAllText(Path.Combine(export, "model.onnx"), "graph");
            File.WriteAllBytes(Path.Combine(export, "model.onnx.data"), [1, 2, 3]);
            File.WriteAllText(Path.Combine(export, "genai_config.json"),
                """{"model":{"type":"bloom","decoder":{"filename":"model.onnx","session_options":{"log_id":"onnxruntime-genai","provider_options":[]}}}}""");

            var threaded = GenAiThreads.Folder(export, 3);

            Assert.Equal("graph", File.ReadAllText(Path.Combine(threaded, "model.onnx")));
            Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(threaded, "model.onnx.data")));
            Assert.NotNull(new FileInfo(Path.Combine(threaded, "model.onnx.data")).LinkTarget);
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(threaded, "genai_config.json")))!;
            var session = config["model"]!["decoder"]!["session_options"]!;
            Assert.Equal(3, session["intra_op_num_threads"]!.GetValue<int>());
            Assert.Equal("onnxruntime-genai", session["log_id"]!.GetValue<string>());
            Assert.Equal("model.onnx", config["model"]!["decoder"]!["filename"]!.GetValue<string>());
            // the export's own config is untouched
            Assert.DoesNotContain("intra_op_num_threads", File.ReadAllText(Path.Combine(export, "genai_config.json")));
            Assert.InRange(GenAiThreads.PhysicalCores(), 1, Environment.ProcessorCount);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
