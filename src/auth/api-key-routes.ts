import { RequestMethod, Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import type { Express, NextFunction, Request, Response } from 'express';
import { authConfig, AuthConfig } from '../config/auth.config';
import { tenantOfRequest } from './api-keys';
import { isPublicRoute } from './public.decorator';
import { RequestWithTenant } from './tenant';

interface Route {
  method: RequestMethod;
  path: string;
  isPublic: boolean;
}

const asArray = (paths: string | string[] | undefined): string[] => (Array.isArray(paths) ? paths : [paths ?? '']);

const joinPath = (...parts: string[]): string =>
  `/${parts
    .map((part) => part.replace(/^\/+|\/+$/g, ''))
    .filter(Boolean)
    .join('/')}`;

/** Every controller route, in the order Nest registers them, and whether it is `@Public()`. */
function controllerRoutes(app: NestExpressApplication): Route[] {
  const reflector = app.get(Reflector);
  const scanner = new MetadataScanner();
  const routes: Route[] = [];
  for (const wrapper of app.get(DiscoveryService).getControllers()) {
    const controller = wrapper.metatype as Type | null;
    if (!controller) continue;
    const prototype = controller.prototype as Record<string, (...args: never[]) => unknown>;
    for (const name of scanner.getAllMethodNames(prototype)) {
      const handler = prototype[name];
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      const isPublic = isPublicRoute(reflector, handler, controller);
      for (const base of asArray(Reflect.getMetadata(PATH_METADATA, controller))) {
        for (const path of asArray(Reflect.getMetadata(PATH_METADATA, handler))) {
          routes.push({ method, path: joinPath(base, path), isPublic });
        }
      }
    }
  }
  return routes;
}

/**
 * Refuses a request to a route that needs an API key (the guard's rule: not `@Public()`) and has
 * no valid one, before the body parsers run: Nest's guards come after them, so a caller without
 * a key could otherwise make the service read and parse bodies of up to IMPORT_BODY_LIMIT. Call
 * before the body parsers. The routes are matched by Express itself, with the paths Nest gives
 * them, so the same route decides as Nest's router will; the first route that matches decides.
 * Requests no route matches (docs, unknown paths) pass, as they do the guard.
 */
export function refuseMissingApiKeysEarly(app: NestExpressApplication): void {
  const { apiKeys } = app.get<AuthConfig>(authConfig.KEY);
  if (apiKeys.length === 0) return;
  const express = app.getHttpAdapter().getInstance() as Express;
  const decided = new WeakSet<Request>();
  for (const { method, path, isPublic } of controllerRoutes(app)) {
    const verb = RequestMethod[method].toLowerCase() as 'all';
    express[verb](path, (request: Request, _response: Response, next: NextFunction) => {
      if (decided.has(request)) return next();
      decided.add(request);
      if (isPublic) return next();
      try {
        // Kept for the guard, which then does not check the key again.
        (request as RequestWithTenant).tenant = tenantOfRequest(apiKeys, request.headers.authorization);
      } catch (error) {
        return next(error);
      }
      next();
    });
  }
}
