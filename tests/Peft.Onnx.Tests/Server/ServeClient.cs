using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Peft.Onnx.Tests.Server;

/// <summary>Plain HTTP calls on a test server: JSON posts, server-sent event streams, OpenAI error objects.</summary>
public static class ServeClient
{
    /// <param name="expectContinue">
    /// Send "Expect: 100-continue", so a body the server refuses unread (413) is never written: without it the client may
    /// still be writing when the server answers and closes, and the send fails with a broken pipe instead of the answer.
    /// </param>
    public static async Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> PostAsync(HttpClient http, string path, string body, string? key = null, bool expectContinue = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (key != null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (expectContinue) request.Headers.ExpectContinue = true;
        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response);
    }

    public static Task<(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Response)> PostAsync(HttpClient http, string path, JsonObject body, string? key = null) =>
        PostAsync(http, path, body.ToJsonString(), key);

    /// <summary>The data lines of a streamed response, up to and including [DONE].</summary>
    public static async Task<List<string>> StreamAsync(HttpClient http, string path, JsonObject body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line["data: ".Length..]);
        return events;
    }

    /// <summary>Asserts OpenAI's error object with every field present and returns it.</summary>
    public static JsonObject AssertError(JsonNode? body, string? param = null, string? code = null)
    {
        var error = body!["error"]!.AsObject();
        Assert.False(string.IsNullOrEmpty(error["message"]!.GetValue<string>()));
        Assert.False(string.IsNullOrEmpty(error["type"]!.GetValue<string>()));
        Assert.True(error.ContainsKey("param") && error.ContainsKey("code"));
        Assert.DoesNotContain("   at ", error["message"]!.GetValue<string>());
        if (param != null) Assert.Equal(param, error["param"]!.GetValue<string>());
        if (code != null) Assert.Equal(code, error["code"]!.GetValue<string>());
        return error;
    }

    public static int[] Ids(JsonNode? array) => array!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
}
