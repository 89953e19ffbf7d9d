#pragma once
// The message of the exception of type E that `body` throws; a test failure (and "") when it
// throws nothing or another type.
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <string>

template <class E>
std::string ThrowMessage(const std::function<void()>& body) {
  try {
    body();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong type of exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "threw nothing";
  return "";
}
